import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { computeTokenLogprobs, MAX_TOP_LOGPROBS } from '../../../src/engine/sampling/logprobs.js';
import { RowRng } from '../../../src/engine/sampling/rng.js';

/** Log-softmax with no max shift: fine for logits of modest size, and independent of the code under test. */
function naiveLogSoftmax(logits: Float32Array): number[] {
  let z = 0;
  for (const l of logits) z += Math.exp(l);
  return Array.from(logits, (l) => l - Math.log(z));
}

function randomLogits(n: number, seed: number, scale: number): Float32Array {
  const rng = RowRng.fromSeed(seed);
  // Rounded to a coarse grid so that ties occur.
  return Float32Array.from({ length: n }, () => Math.round((rng.nextUniform() * 2 - 1) * scale * 4) / 4);
}

function expectedTop(lp: number[], n: number): { id: number; logprob: number }[] {
  return [...lp.keys()]
    .sort((a, b) => lp[b]! - lp[a]! || a - b)
    .slice(0, n)
    .map((id) => ({ id, logprob: lp[id]! }));
}

describe('computeTokenLogprobs', () => {
  it('matches a naive float64 log-softmax to 1e-6, with the top-N most likely first', () => {
    const logits = randomLogits(5000, 3, 20);
    const ref = naiveLogSoftmax(logits);
    for (const topN of [0, 1, 5, MAX_TOP_LOGPROBS]) {
      for (const chosen of [0, 17, 4999]) {
        const out = computeTokenLogprobs(logits, chosen, topN);
        assert.ok(Math.abs(out.logprob - ref[chosen]!) < 1e-6);
        const want = expectedTop(ref, topN);
        assert.deepEqual(out.top.map((t) => t.id), want.map((t) => t.id));
        out.top.forEach((t, i) => assert.ok(Math.abs(t.logprob - want[i]!.logprob) < 1e-6));
      }
    }
  });

  it('ranks the chosen token as vLLM does: the tokens at least as likely, itself included', () => {
    const logits = Float32Array.of(1, 3, 2, 3, 3, 0);
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((id) => computeTokenLogprobs(logits, id, 0).rank), [5, 3, 4, 3, 3, 6]);
    const big = randomLogits(5000, 3, 20);
    for (const chosen of [0, 17, 4999]) {
      const atLeast = big.reduce((n, v) => n + (v >= big[chosen]! ? 1 : 0), 0);
      assert.equal(computeTokenLogprobs(big, chosen, 3).rank, atLeast);
    }
  });

  it('orders tied alternatives by lower id first', () => {
    const out = computeTokenLogprobs(Float32Array.of(1, 3, 2, 3, 3, 0), 0, 4);
    assert.deepEqual(out.top.map((t) => t.id), [1, 3, 4, 2]);
  });

  it('returns the whole vocabulary when it is smaller than N', () => {
    const out = computeTokenLogprobs(Float32Array.of(0, 1), 1, 5);
    assert.deepEqual(out.top.map((t) => t.id), [1, 0]);
    const total = out.top.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(Math.abs(total - 1) < 1e-12);
  });

  it('stays finite and accurate for large logits', () => {
    const logits = Float32Array.of(10_000, 9_999, 9_990, -10_000);
    const out = computeTokenLogprobs(logits, 1, 2);
    const lse = 10_000 + Math.log(1 + Math.exp(-1) + Math.exp(-10));
    assert.ok(Math.abs(out.logprob - (9_999 - lse)) < 1e-9);
    assert.ok(Math.abs(out.top[0]!.logprob - (10_000 - lse)) < 1e-9);
    assert.equal(computeTokenLogprobs(logits, 3, 0).logprob, -10_000 - lse);
  });

  it('gives -Infinity to masked tokens', () => {
    const out = computeTokenLogprobs(Float32Array.of(0, -Infinity), 1, 2);
    assert.equal(out.logprob, -Infinity);
    assert.equal(out.top[0]!.logprob, 0);
  });

  it('rejects a bad N or token id', () => {
    const l = Float32Array.of(0, 1);
    assert.throws(() => computeTokenLogprobs(l, 0, MAX_TOP_LOGPROBS + 1), RangeError);
    assert.throws(() => computeTokenLogprobs(l, 0, -1), RangeError);
    assert.throws(() => computeTokenLogprobs(l, 2, 1), RangeError);
  });
});
