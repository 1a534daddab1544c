/**
 * Weights held once: a second graph of the same model (here the ACT graph beside the plain one) maps
 * the same weight store, pre-packed weights included, so it adds far less than the weights' size.
 * Measured on a seeded random model of the 110M shape (438 MB of f32 weights), as PSS and anonymous
 * memory (see load-tests/process-memory.ts for why not RSS: RSS counts the shared file pages once per session).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { act } from '../../calibrators/act.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { readStoreIndex } from '../../models/onnx/weight-store.js';
import { loadLlama2cTokenizer } from '../../models/tokenizers/llama2c-tokenizer.js';
import { cachedRandomModel, SCALE_SHAPES } from '../../load-tests/random-llama2c.js';
import { storedEngineModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request } from '../helpers/engine-harness.js';
import { memoryFigures } from '../../load-tests/process-memory.js';

const MB = 1024 * 1024;

describe('memory: weights held once', () => {
  it('a second graph of the same model adds less than 10% of the weights (PSS and anonymous memory)', async () => {
    const dir = await cachedRandomModel(join(tmpdir(), 'attune-test-models'), 'scale-110M', SCALE_SHAPES['110M']);
    const tokenizer = await loadLlama2cTokenizer(join(dir, 'tok32000.bin'), 32000);
    const cache = await mkdtemp(join(tmpdir(), 'attune-memory-'));
    try {
      // Build the store first, so what is measured below is a (re)start, not the one-off encoding.
      await (await storedEngineModel(join(dir, 'model.bin'), tokenizer, cache)).model.graphs.release();
      const before = memoryFigures();
      const { model } = await storedEngineModel(join(dir, 'model.bin'), tokenizer, cache, { calibrators: [act as AnyCalibrator] });
      const weights = (await readStoreIndex(dirname((await model.graphs.sessionFor([])).modelPath!)))!.weightBytes;
      const engine = new InProcessEngine(model, { maxBatch: 2 });
      const prompt = [1, 500, 600, 700, 800];
      await engine.run(request('plain', prompt, { maxTokens: 8, ignoreEos: true }));
      const oneGraph = memoryFigures();
      const config = act.resolve({ heads: { 2: [0, 1], 5: [3] } }, { name: 'scale-110M', config: model.config, profile: {} });
      await engine.run(request('act', prompt, { maxTokens: 8, ignoreEos: true }, { act: config }));
      const twoGraphs = memoryFigures();
      assert.deepEqual(model.graphs.openSets, [[], ['act']]);

      const fmt = (n: number) => `${(n / MB).toFixed(1)} MB`;
      console.log(
        `weights ${fmt(weights)}; one graph: PSS +${fmt(oneGraph.pss - before.pss)}, anonymous +${fmt(oneGraph.anonymous - before.anonymous)}; ` +
          `second graph: PSS +${fmt(twoGraphs.pss - oneGraph.pss)}, anonymous +${fmt(twoGraphs.anonymous - oneGraph.anonymous)}, RSS +${fmt(twoGraphs.rss - oneGraph.rss)} (RSS counts the shared pages again)`,
      );
      assert.ok(twoGraphs.pss - oneGraph.pss < 0.1 * weights, 'PSS of the second graph');
      assert.ok(twoGraphs.anonymous - oneGraph.anonymous < 0.1 * weights, 'anonymous memory of the second graph');
      // The first graph holds the weights about once (what it touched of them), not once per copy.
      assert.ok(oneGraph.pss - before.pss < 1.3 * weights, 'PSS of the first graph');
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });
});
