import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RowSampler } from '../../../src/engine/sampling/row-sampler.js';
import { SamplingScratch } from '../../../src/engine/sampling/token-selection.js';
import type { RowTokenHistory } from '../../../src/engine/sampling/token-history.js';
import type { SamplingParams } from '../../../src/engine/types.js';
import { BASE_PARAMS } from './params.js';

const VOCAB = 64;

/** A deterministic stand-in for a model: the next-token logits depend on the last token. */
function fakeLogits(history: RowTokenHistory): Float32Array {
  const last = history.outputIds.at(-1) ?? history.promptIds.at(-1) ?? 0;
  return Float32Array.from({ length: VOCAB }, (_, i) => Math.sin(i * 0.7 + last * 1.3) * 3);
}

function generate(sampler: RowSampler, n: number): number[] {
  for (let i = 0; i < n; i++) sampler.sample(fakeLogits(sampler.history));
  return [...sampler.history.outputIds];
}

const SAMPLED: SamplingParams = { ...BASE_PARAMS, temperature: 0.9, topK: 40, topP: 0.95, seed: 7 };

describe('RowSampler', () => {
  it('repeats the same tokens for the same seed', () => {
    const a = generate(new RowSampler(SAMPLED, [1, 2]), 50);
    const b = generate(new RowSampler(SAMPLED, [1, 2]), 50);
    assert.deepEqual(a, b);
    assert.ok(new Set(a).size > 5, 'the sample is not degenerate');
    assert.notDeepEqual(generate(new RowSampler({ ...SAMPLED, seed: 8 }, [1, 2]), 50), a);
  });

  it('gives each seeded row the same tokens whatever rows it is interleaved with', () => {
    const configs: [SamplingParams, number[]][] = [
      [{ ...SAMPLED, seed: 99, minP: 0.1 }, [3]],
      [SAMPLED, [1, 2]],
      [{ ...SAMPLED, seed: undefined }, [5, 6]],
      [{ ...SAMPLED, seed: 3, topK: 0, topP: 0.8, temperature: 1.3 }, [4]],
      [{ ...BASE_PARAMS, temperature: 0 }, [1]],
    ];
    const alone = configs.map(([p, prompt]) => generate(new RowSampler(p, prompt), 40));

    const scratch = new SamplingScratch();
    const rows = configs.map(([p, prompt]) => new RowSampler(p, prompt, { scratch }));
    for (let step = 0; step < 40; step++) {
      // Vary the order too: a shared PRNG would make this matter.
      const order = step % 2 === 0 ? rows : [...rows].reverse();
      for (const r of order) r.sample(fakeLogits(r.history));
    }
    for (const i of [0, 1, 3, 4]) assert.deepEqual([...rows[i]!.history.outputIds], alone[i], `row ${i}`);
  });

  it('greedy rows take the argmax of processed logits and draw no random numbers', () => {
    const rng = { nextUniform: (): number => assert.fail('greedy drew a number') };
    const s = new RowSampler({ ...BASE_PARAMS, temperature: 0, logitBias: { 5: 100 } }, [0], { rng });
    assert.equal(s.sample(new Float32Array(VOCAB)).tokenId, 5);
  });

  it('reports raw logprobs, from before bias and penalties', () => {
    const raw = Float32Array.of(2, 1, 0, -1);
    const s = new RowSampler({ ...BASE_PARAMS, temperature: 0, logitBias: { 3: 50 }, repetitionPenalty: 3, logprobs: 2 }, [0]);
    const logits = Float32Array.from(raw);
    const out = s.sample(logits);
    assert.equal(out.tokenId, 3);
    const lse = Math.log(raw.reduce((a, l) => a + Math.exp(l), 0));
    assert.ok(Math.abs(out.logprobs!.logprob - (-1 - lse)) < 1e-9);
    assert.deepEqual(out.logprobs!.top.map((t) => t.id), [0, 1]);
    assert.ok(Math.abs(out.logprobs!.top[0]!.logprob - (2 - lse)) < 1e-9);
    assert.ok(logits[3]! > 40, 'processors work in place on the caller’s row');
  });

  it('applies penalties from its own history', () => {
    // Token 0 leads by 1; a presence penalty of 2 lets token 1 win once 0 has been generated.
    const s = new RowSampler({ ...BASE_PARAMS, temperature: 0, presencePenalty: 2 }, [9]);
    const row = (): Float32Array => Float32Array.of(1, 0, -5);
    assert.equal(s.sample(row()).tokenId, 0);
    assert.equal(s.sample(row()).tokenId, 1);
    assert.equal(s.sample(row()).tokenId, 0);
    assert.deepEqual([...s.history.outputCounts].sort(), [[0, 2], [1, 1]]);
  });

  it('returns null logprobs when none were requested and rejects out-of-range requests', () => {
    assert.equal(new RowSampler(SAMPLED, []).sample(new Float32Array(VOCAB)).logprobs, null);
    assert.throws(() => new RowSampler({ ...SAMPLED, logprobs: 21 }, []), RangeError);
    assert.throws(() => new RowSampler({ ...SAMPLED, topP: 0 }, []), RangeError);
  });
});
