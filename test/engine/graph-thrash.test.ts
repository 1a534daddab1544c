/**
 * --max-graphs below the number of calibrator sets live at once: a least-recently-used bound that
 * closed a graph live rows still run would reopen it later in the same step, every step (a
 * compile-cache lookup and a session create per group per step). Graphs of live rows stay open past
 * the bound, which returns once they finish.
 */
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { before, describe, it } from 'node:test';
import { act } from '../../calibrators/act.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { probe } from '../helpers/probe-calibrator.js';
import { loadModelProfile } from '../../calibrators/index.js';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, storedEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request } from '../helpers/engine-harness.js';
import { withTempDir } from '../helpers/temp-dir.js';
import type { DecoderSession } from '../../src/engine/ort-session.js';


describe('--max-graphs below the sets live at once', () => {
  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  it('does not reopen a graph every step while its rows decode', async () => {
    const profile = loadModelProfile('stories260K', dirname(stories260K.checkpoint));
    const facts = { name: 'stories260K', config: m.weights.config, profile };
    await withTempDir(async (cache) => {
      const { model } = await storedEngineModel(stories260K.checkpoint, m.tokenizer, cache, { calibrators: [act as AnyCalibrator, probe as AnyCalibrator], profile, maxGraphs: 2 });
      const opened = new Set<DecoderSession>();
      const sessionFor = model.graphs.sessionFor.bind(model.graphs);
      model.graphs.sessionFor = async (ids, live) => {
        const s = await sessionFor(ids, live);
        opened.add(s);
        return s;
      };
      const engine = new InProcessEngine(model);
      const prompt = m.tokenizer.encode('Once upon a time', { addBos: true });
      const runs = [
        engine.submit(request('plain', prompt, { maxTokens: 16, ignoreEos: true })),
        engine.submit(request('act', prompt, { maxTokens: 16, ignoreEos: true }, { act: act.resolve(true, facts) })),
        engine.submit(request('probe', prompt, { maxTokens: 16, ignoreEos: true }, { probe: {} })),
      ];
      await engine.drain();
      for (const r of runs) assert.equal(r.error, null);
      // Three sets live for 16 steps: three opens would do; a reopen per step is thrashing.
      assert.ok(opened.size <= 4, `${opened.size} sessions opened for 3 graph sets over 16 steps`);
      // Once those rows are done, the bound holds again.
      const after = engine.submit(request('plain-after', prompt, { maxTokens: 2, ignoreEos: true }));
      await engine.drain();
      assert.equal(after.error, null);
      assert.ok(model.graphs.openSets.length <= 2, `open after the rows finished: ${JSON.stringify(model.graphs.openSets)}`);
    });
  });
});
