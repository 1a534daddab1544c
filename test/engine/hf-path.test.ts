/**
 * The HF safetensors path: random Llama, Mistral and Qwen2 checkpoints in the real layout (F32 and
 * BF16, tied and untied, GQA, q/k/v biases, linear and Llama 3.1 RoPE scaling) match the float64
 * reference, and stories260K converted
 * to HF Llama layout (q/k permuted for rotate_half) gives the same greedy text as the .bin path.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { writeRandomHfCheckpoint, type RandomHfOptions } from '../helpers/random-hf-checkpoint.js';
import { loadLlama2cFixture, fixtureEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request, maxAbsDiff } from '../helpers/engine-harness.js';
import { ReferenceDecoder } from '../reference/reference-forward.js';
import { loadHfDecoder } from '../../models/checkpoint/hf-decoder.js';
import { llama2cToHf, writeHfCheckpoint } from '../../models/checkpoint/convert.js';
import { resolveModel } from '../../models/resolve.js';
import { EngineClient } from '../../src/engine/engine-client.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';

const fixtureIds = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/stories260K-greedy-256.json'), 'utf8')) as number[];

describe('HF checkpoints', () => {
  let stories: FixtureModel;
  before(async () => {
    stories = await loadLlama2cFixture(stories260K);
  });

  const cases: [string, RandomHfOptions][] = [
    ['Llama, GQA, untied, F32', { arch: 'llama', dtype: 'F32', tied: false }],
    ['Llama, GQA, tied, BF16', { arch: 'llama', dtype: 'BF16', tied: true, seed: 11 }],
    ['Mistral, MHA, untied, BF16', { arch: 'mistral', dtype: 'BF16', tied: false, heads: 4, kvHeads: 4, seed: 5, ropeTheta: 10000 }],
    ['Qwen2, q/k/v bias, tied, BF16', { arch: 'qwen2', dtype: 'BF16', tied: true, seed: 3, ropeTheta: 1000000 }],
    ['Qwen2, q/k/v bias, untied, F32', { arch: 'qwen2', dtype: 'F32', tied: false, seed: 4 }],
    // head_dim 8 at θ 10000 has wavelengths 6.3, 63, 628 and 6283: with an original context of 4096
    // and factors 1 and 8, the first two keep their frequency, the third is blended, the last divided.
    ['Llama 3.1 RoPE scaling (llama3)', {
      arch: 'llama', dtype: 'F32', tied: true, seed: 8, ropeTheta: 10000,
      ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 8, original_max_position_embeddings: 4096 },
    }],
    ['linear RoPE scaling', { arch: 'llama', dtype: 'F32', tied: false, seed: 9, ropeTheta: 10000, ropeScaling: { type: 'linear', factor: 4 } }],
  ];
  for (const [name, opts] of cases) {
    it(`${name}: ORT matches the float64 reference (prefill + decode)`, () =>
      withTempDir(async (dir) => {
        await writeRandomHfCheckpoint(dir, opts);
        const weights = await loadHfDecoder(dir);
        assert.equal(weights.config.ropeStyle, 'rotate_half');
        assert.equal(weights.config.ropeScaling?.type, (opts.ropeScaling?.rope_type ?? opts.ropeScaling?.type) as string | undefined);
        assert.equal(weights.lmHead === weights.tokenEmbedding, opts.tied);
        // The random weights use the 512-entry vocabulary, so the stories tokenizer can detokenize them.
        const engine = new InProcessEngine(await fixtureEngineModel({ weights, tokenizer: stories.tokenizer }), {}, true);
        const prompt = stories.tokenizer.encode('Once upon a time there was a tiny model', { addBos: true });
        const r = await engine.run(request('hf', prompt, { maxTokens: 12, promptLogprobs: 0, ignoreEos: true }));
        assert.equal(r.error, null);
        const ref = new ReferenceDecoder(weights);
        let worst = 0;
        ref.step({ tokens: prompt }).forEach((row, pos) => (worst = Math.max(worst, maxAbsDiff(r.logits.get(pos)!, row))));
        for (let s = 0; s < 11; s++) worst = Math.max(worst, maxAbsDiff(r.logits.get(prompt.length + s)!, ref.step({ tokens: [r.tokenIds[s]!] })[0]!));
        assert.ok(worst < 1e-4, `max |ORT - float64| = ${worst}`);
      }));
  }

  for (const dtype of ['F32', 'BF16'] as const) {
    it(`stories260K converted to HF Llama layout (${dtype}) loads back to the same model`, () =>
      withTempDir(async (dir) => {
        await writeHfCheckpoint(dir, llama2cToHf(stories.weights, { dtype }));
        const w = await loadHfDecoder(dir);
        assert.equal(w.config.ropeStyle, 'rotate_half');
        if (dtype === 'F32') assert.deepEqual(w.tokenEmbedding, stories.weights.tokenEmbedding);
      }));
  }

  it('stories260K in HF layout gives the same greedy text as the .bin path, through the worker', () =>
    withTempDir(async (dir) => {
      await writeHfCheckpoint(dir, llama2cToHf(stories.weights, { dtype: 'F32' }));
      copyFileSync(stories260K.tokenizer, join(dir, 'tok512.bin'));
      const model = await resolveModel(dir);
      assert.equal(model.format, 'hf');
      const client = await EngineClient.start({ model });
      try {
        const ids: number[] = [];
        for await (const e of client.generate({ id: 'hf-golden', promptIds: [1], sampling: { ...GREEDY_DEFAULTS, maxTokens: 256 }, calibration: {} })) {
          if (e.type === 'tokens') ids.push(...e.tokenIds);
          if (e.type === 'error') assert.fail(e.message);
        }
        assert.deepEqual(ids, fixtureIds);
      } finally {
        await client.close();
      }
    }));
});
