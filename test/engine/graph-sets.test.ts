/**
 * One graph per set of active calibrators: a row runs a graph with its calibrators' fragments and no
 * others' (checked on the node names of the model file the session ran), graphs are opened on first
 * use, and an LRU bound closes the least recently used.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { before, describe, it } from 'node:test';
import { act } from '../../calibrators/act.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { probe } from '../helpers/probe-calibrator.js';
import { onnx } from '../../models/onnx/onnx-proto.js';
import { loadModelProfile } from '../../calibrators/index.js';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, storedEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request } from '../helpers/engine-harness.js';
import { withTempDir } from '../helpers/temp-dir.js';
import type { LoadedEngineModel } from '../../src/engine/load-engine-model.js';


/** Fragment owners whose nodes are in the model file (node names are `<owner>/…` inside fragments). */
async function ownersInGraph(path: string): Promise<string[]> {
  const model = onnx.ModelProto.decode(await readFile(path));
  return [...new Set(model.graph!.node!.map((n) => n.name!).filter((n) => n.includes('/')).map((n) => n.split('/')[0]!))].sort();
}

describe('graphs per set of active calibrators', () => {
  let m: FixtureModel;
  const profile = loadModelProfile('stories260K', dirname(stories260K.checkpoint));
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });
  const facts = () => ({ name: 'stories260K', config: m.weights.config, profile });
  const calibrators = [act as AnyCalibrator, probe as AnyCalibrator];

  async function run(model: LoadedEngineModel, calibration: Record<string, unknown>): Promise<number[]> {
    const prompt = m.tokenizer.encode('Once upon a time', { addBos: true });
    const r = await new InProcessEngine(model).run(request('r', prompt, { maxTokens: 12 }, calibration));
    assert.equal(r.error, null);
    return r.tokenIds;
  }

  it('ACT rows run a graph without other calibrators\' fragments; ACT+probe rows one with both', async () => {
    await withTempDir(async (cache) => {
      const { model } = await storedEngineModel(stories260K.checkpoint, m.tokenizer, cache, { calibrators, profile });
      // At load, only the plain graph is open: a row pays for nothing it does not use.
      assert.deepEqual(model.graphs.openSets, [[]]);
      assert.deepEqual(await ownersInGraph((await model.graphs.sessionFor([])).modelPath!), []);

      await run(model, { act: act.resolve(true, facts()) });
      assert.deepEqual(model.graphs.openSets, [[], ['act']]);
      assert.deepEqual(await ownersInGraph((await model.graphs.sessionFor(['act'])).modelPath!), ['act']);

      await run(model, { act: act.resolve(true, facts()), probe: {} });
      assert.deepEqual(model.graphs.openSets, [[], ['act'], ['act', 'probe']]);
      assert.deepEqual(await ownersInGraph((await model.graphs.sessionFor(['probe', 'act'])).modelPath!), ['act', 'probe']);
    });
  });

  it('keeps at most --max-graphs open, closing the least recently used, and evicted sets reopen with the same results', async () => {
    await withTempDir(async (cache) => {
      const { model } = await storedEngineModel(stories260K.checkpoint, m.tokenizer, cache, { calibrators, profile, maxGraphs: 2 });
      const everyHead = Object.fromEntries([2, 3, 4].map((l) => [String(l), [0, 1, 2, 3, 4, 5, 6, 7]]));
      const actCfg = act.resolve({ beta: 0, heads: everyHead }, facts());
      const plain = await run(model, {});
      const withAct = await run(model, { act: actCfg });
      const withProbe = await run(model, { probe: {} });
      assert.deepEqual(model.graphs.openSets, [['act'], ['probe']], 'the plain graph, least recently used, was closed');
      assert.deepEqual(withProbe, plain, 'probe multiplies by exactly 1');
      assert.deepEqual(await run(model, {}), plain);
      assert.deepEqual(model.graphs.openSets, [['probe'], []]);
      assert.deepEqual(await run(model, { act: actCfg }), withAct);
      assert.notDeepEqual(withAct, plain, 'ACT with beta 0 on every head of layers 2..4 changes this text');
    });
  });
});
