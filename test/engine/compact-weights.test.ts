/**
 * Compact weight formats against f32, through the serving path (weight store, onnxruntime's own
 * kernels): on stories260K and on a seeded random model of the 110M shape. Each format has its own
 * tolerance (README "Compact weights" gives the measured figures; the bounds here are about twice
 * them). The f32 model's greedy continuation is scored teacher-forced under each format: the
 * log-probability of each f32 token, and whether the format's own top token is the same. Calibrators
 * keep their identity semantics on compact weights: ACT that changes nothing is bit-identical to the
 * plain graph of the same format.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { act } from '../../calibrators/act.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import type { WeightFormat } from '../../models/onnx/weight-format.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { random110M, TEST_COMPILED_CACHE } from '../helpers/test-models.js';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, storedEngineModel } from '../helpers/load-fixture-model.js';
import { assertBitIdentical, InProcessEngine, request } from '../helpers/engine-harness.js';

interface Tolerance {
  /** Mean and max |Δ log p| of the f32 greedy token. */
  meanLogprob: number;
  maxLogprob: number;
  /** Positions where the format's top token is the f32 token. */
  minTop1: number;
  /** Free-running greedy tokens identical to f32's before the first difference. */
  minSamePrefix: number;
}

interface Case {
  name: string;
  checkpoint: () => Promise<{ path: string; tokenizer: Tokenizer }>;
  prompt: number[];
  tokens: number;
  tolerance: Record<Exclude<WeightFormat, 'f32'>, Tolerance>;
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const z = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - z);
}

const argmax = (a: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
};

const CASES: Case[] = [
  {
    name: 'stories260K',
    checkpoint: async () => ({ path: stories260K.checkpoint, tokenizer: (await loadLlama2cFixture(stories260K)).tokenizer }),
    prompt: [1],
    tokens: 200,
    // Measured: f16 mean 0.0003 / max 0.003, 100%, 200/200; int8 0.014 / 0.10, 99.5%, 185/200;
    // int4 0.16 / 2.7, 88%, 27/200 (4 bits on a 64-wide model).
    tolerance: {
      f16: { meanLogprob: 0.002, maxLogprob: 0.02, minTop1: 0.99, minSamePrefix: 150 },
      int8: { meanLogprob: 0.03, maxLogprob: 0.3, minTop1: 0.97, minSamePrefix: 100 },
      int4: { meanLogprob: 0.3, maxLogprob: 5, minTop1: 0.8, minSamePrefix: 10 },
    },
  },
  {
    name: 'random 110M shape',
    checkpoint: random110M,
    prompt: [1, 500, 600, 700, 800, 900],
    tokens: 48,
    // Measured: f16 0.0001 / 0.002; int8 0.007 / 0.09; int4 0.10 / 0.52; top-1 100% and 64/64 for all.
    tolerance: {
      f16: { meanLogprob: 0.001, maxLogprob: 0.01, minTop1: 0.99, minSamePrefix: 32 },
      int8: { meanLogprob: 0.015, maxLogprob: 0.2, minTop1: 0.98, minSamePrefix: 32 },
      int4: { meanLogprob: 0.2, maxLogprob: 1.0, minTop1: 0.95, minSamePrefix: 16 },
    },
  },
];

for (const c of CASES) {
  describe(`compact weights on ${c.name}`, () => {
    const cache = TEST_COMPILED_CACHE;
    let path: string;
    let tokenizer: Tokenizer;
    let sequence: number[];
    let reference: Map<number, Float32Array>;
    before(async () => {
      ({ path, tokenizer } = await c.checkpoint());
      const f32 = await open('f32');
      const greedy = await f32.run(request('g', c.prompt, { maxTokens: c.tokens, ignoreEos: true }));
      sequence = [...c.prompt, ...greedy.tokenIds];
      reference = (await f32.run(request('s', sequence, { maxTokens: 1, promptLogprobs: 0, ignoreEos: true }))).logits;
    });

    async function open(format: WeightFormat) {
      const { model } = await storedEngineModel(path, tokenizer, cache, { weights: format });
      return new InProcessEngine(model, { prefillChunk: 512, maxPrefillTokensPerStep: 4096 }, true);
    }

    for (const format of ['f16', 'int8', 'int4'] as const) {
      it(`${format}: logprobs and greedy text within its tolerance of f32`, async () => {
        const t = c.tolerance[format];
        const engine = await open(format);
        const scored = (await engine.run(request('s', sequence, { maxTokens: 1, promptLogprobs: 0, ignoreEos: true }))).logits;
        let sum = 0, max = 0, top1 = 0, n = 0;
        for (let p = c.prompt.length - 1; p < sequence.length - 1; p++) {
          const next = sequence[p + 1]!;
          const want = logSoftmax(reference.get(p)!), got = logSoftmax(scored.get(p)!);
          const d = Math.abs(want[next]! - got[next]!);
          sum += d;
          max = Math.max(max, d);
          if (argmax(got) === next) top1++;
          n++;
        }
        const free = (await engine.run(request('g', c.prompt, { maxTokens: c.tokens, ignoreEos: true }))).tokenIds;
        let same = 0;
        while (same < free.length && free[same] === sequence[c.prompt.length + same]) same++;
        const summary = `${c.name} ${format}: |Δ log p| mean ${(sum / n).toFixed(4)} max ${max.toFixed(4)}, top-1 ${((100 * top1) / n).toFixed(1)}%, greedy identical for ${same}/${c.tokens}`;
        console.log(summary);
        assert.ok(sum / n <= t.meanLogprob, summary);
        assert.ok(max <= t.maxLogprob, summary);
        assert.ok(top1 / n >= t.minTop1, summary);
        assert.ok(same >= t.minSamePrefix, summary);
      });
    }
  });
}

describe('calibrators on compact weights keep their identity semantics', () => {
  for (const format of ['int8', 'int4'] as const) {
    it(`${format}: ACT with beta 1, run through the graph with ACT's fragments, is bit-identical to the plain graph`, async () => {
      const cache = TEST_COMPILED_CACHE;
      const m = await loadLlama2cFixture(stories260K);
      const prompt = m.tokenizer.encode('Once upon a time, there was a dog', { addBos: true });
      const facts = { name: 'stories260K', config: m.weights.config, profile: {} };
      const off = act.resolve({ beta: 1, heads: { 2: [0, 1, 2, 3, 4, 5, 6, 7], 3: [1], 4: [5] } }, facts);
      const plain = await storedEngineModel(stories260K.checkpoint, m.tokenizer, cache, { weights: format });
      const forced = await storedEngineModel(stories260K.checkpoint, m.tokenizer, cache, { weights: format, calibrators: [act as AnyCalibrator], plainFastPath: false });
      assert.ok((await forced.model.graphs.sessionFor([])).graph.rowInputs.some((r) => r.owner === 'act'));
      const a = await new InProcessEngine(plain.model, {}, true).run(request('p', prompt, { maxTokens: 20, promptLogprobs: 0 }));
      const b = await new InProcessEngine(forced.model, {}, true).run(request('c', prompt, { maxTokens: 20, promptLogprobs: 0 }, { act: off }));
      assertBitIdentical(a, b);
    });
  }
});
