/**
 * Weights held once: a second graph of the same model (here the ACT graph beside the plain one) maps
 * the same weight store, pre-packed weights included, so it adds far less than the weights' size
 * in every format.
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
import { memoryFigures, type MemoryFigures } from '../../load-tests/process-memory.js';
import type { WeightFormat } from '../../models/onnx/weight-format.js';

const MB = 1024 * 1024;

interface SecondGraph {
  /** Bytes of the store's encoded weights, and of all it holds (the pre-packed forms too). */
  weights: number;
  storeBytes: number;
  before: MemoryFigures;
  oneGraph: MemoryFigures;
  twoGraphs: MemoryFigures;
}

/** Loads the 110M-shape model (its store built beforehand), runs a plain request, then an ACT one. */
async function secondGraph(format: WeightFormat): Promise<SecondGraph> {
  const dir = await cachedRandomModel(join(tmpdir(), 'attune-test-models'), 'scale-110M', SCALE_SHAPES['110M']);
  const tokenizer = await loadLlama2cTokenizer(join(dir, 'tok32000.bin'), 32000);
  const cache = await mkdtemp(join(tmpdir(), 'attune-memory-'));
  try {
    // Build the store first, so what is measured is a (re)start, not the one-off encoding.
    await (await storedEngineModel(join(dir, 'model.bin'), tokenizer, cache, { weights: format })).model.graphs.release();
    const before = memoryFigures();
    const { model } = await storedEngineModel(join(dir, 'model.bin'), tokenizer, cache, { weights: format, calibrators: [act as AnyCalibrator] });
    const index = (await readStoreIndex(dirname((await model.graphs.sessionFor([])).modelPath!)))!;
    const engine = new InProcessEngine(model, { maxBatch: 2 });
    const prompt = [1, 500, 600, 700, 800];
    await engine.run(request('plain', prompt, { maxTokens: 8, ignoreEos: true }));
    const oneGraph = memoryFigures();
    const config = act.resolve({ heads: { 2: [0, 1], 5: [3] } }, { name: 'scale-110M', config: model.config, profile: {} });
    await engine.run(request('act', prompt, { maxTokens: 8, ignoreEos: true }, { act: config }));
    const twoGraphs = memoryFigures();
    assert.deepEqual(model.graphs.openSets, [[], ['act']]);
    await model.graphs.release();
    const fmt = (n: number) => `${(n / MB).toFixed(1)} MB`;
    console.log(
      `${format}: weights ${fmt(index.weightBytes)} (store ${fmt(index.bytes)}); one graph: PSS +${fmt(oneGraph.pss - before.pss)}, anonymous +${fmt(oneGraph.anonymous - before.anonymous)}; ` +
        `second graph: PSS +${fmt(twoGraphs.pss - oneGraph.pss)}, anonymous +${fmt(twoGraphs.anonymous - oneGraph.anonymous)}, RSS +${fmt(twoGraphs.rss - oneGraph.rss)} (RSS counts the shared pages again)`,
    );
    return { weights: index.weightBytes, storeBytes: index.bytes, before, oneGraph, twoGraphs };
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}

describe('memory: weights held once', () => {
  for (const format of ['f32', 'int8', 'int4'] as const) {
    it(`${format}: a second graph of the same model adds less than 10% of the weights (PSS and anonymous memory)`, async () => {
      const m = await secondGraph(format);
      assert.ok(m.twoGraphs.pss - m.oneGraph.pss < 0.1 * m.weights, 'PSS of the second graph');
      assert.ok(m.twoGraphs.anonymous - m.oneGraph.anonymous < 0.1 * m.weights, 'anonymous memory of the second graph');
      // The first graph holds the weights about once (what it touched of them), not once per copy.
      assert.ok(m.oneGraph.pss - m.before.pss < 1.3 * m.weights, 'PSS of the first graph');
    });
  }
});
