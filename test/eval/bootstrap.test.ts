/** The paired bootstrap: reproducible for a seed, and its interval brackets the observed difference. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapMean, pairedBootstrap, seededRandom } from '../../src/eval/bootstrap.js';

/** 0/1 correctness for two arms that agree on most items, like a calibration that flips a few. */
function arms(n: number, seed: number, flip = 0.12): { before: number[]; after: number[] } {
  const rand = seededRandom(seed);
  const before = Array.from({ length: n }, () => (rand() < 0.7 ? 1 : 0));
  const after = before.map((v) => (rand() < flip ? 1 - v : v));
  return { before, after };
}

describe('paired bootstrap', () => {
  it('is deterministic for a seed and changes with it', () => {
    // Continuous per-item values (like NLL), so that interval ends move with the seed.
    const rand = seededRandom(7);
    const before = Array.from({ length: 106 }, () => 1 + rand());
    const after = before.map((v) => v + 0.3 * (rand() - 0.45));
    const a = pairedBootstrap(before, after, { seed: 3, resamples: 2000 });
    const b = pairedBootstrap(before, after, { seed: 3, resamples: 2000 });
    assert.deepEqual(a, b);
    const c = pairedBootstrap(before, after, { seed: 4, resamples: 2000 });
    assert.equal(c.diff, a.diff, 'the observed difference does not depend on the seed');
    assert.notDeepEqual([c.low, c.high], [a.low, a.high]);
  });

  it('gives an interval that contains the observed difference, for many datasets', () => {
    for (let s = 0; s < 20; s++) {
      const { before, after } = arms(60 + s, 100 + s);
      const r = pairedBootstrap(before, after, { seed: s });
      const observed = after.reduce((x, v) => x + v, 0) / after.length - before.reduce((x, v) => x + v, 0) / before.length;
      assert.ok(Math.abs(r.diff - observed) < 1e-12);
      assert.ok(r.low <= observed && observed <= r.high, `[${r.low}, ${r.high}] vs ${observed}`);
      assert.ok(r.low < r.high);
      assert.equal(r.resamples, 10_000);
      assert.equal(r.confidence, 0.95);
    }
  });

  it('is tighter than the unpaired arms when the arms agree on most items', () => {
    const { before, after } = arms(200, 11, 0.04);
    const d = pairedBootstrap(before, after);
    const a = bootstrapMean(before);
    assert.ok(d.high - d.low < (a.high - a.low) * 0.6, `paired width ${d.high - d.low} vs one arm ${a.high - a.low}`);
  });

  it('gives a zero-width interval when nothing changed, and rejects bad input', () => {
    const same = [1, 0, 1, 1, 0];
    assert.deepEqual({ ...pairedBootstrap(same, same, { resamples: 100 }) }, { diff: 0, low: 0, high: 0, confidence: 0.95, resamples: 100, seed: 0 });
    assert.throws(() => pairedBootstrap([1, 0], [1]), /equal lengths/);
    assert.throws(() => pairedBootstrap([], []), /at least one item/);
    assert.throws(() => pairedBootstrap([1], [0], { resamples: 0 }), /resamples/);
  });
});
