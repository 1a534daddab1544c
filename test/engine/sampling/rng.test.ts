import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createRowRng, RowRng } from '../../../src/engine/sampling/rng.js';

function draws(rng: RowRng, n: number): number[] {
  return Array.from({ length: n }, () => rng.nextUniform());
}

describe('RowRng', () => {
  it('is reproducible for a seed and yields uniforms in [0, 1)', () => {
    const a = draws(RowRng.fromSeed(42), 1000);
    assert.deepEqual(draws(RowRng.fromSeed(42), 1000), a);
    assert.ok(a.every((u) => u >= 0 && u < 1));
    const mean = a.reduce((s, u) => s + u, 0) / a.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  });

  it('gives neighbouring seeds unrelated first draws', () => {
    const firsts = [0, 1, 2, 3, 4, 5, 6, 7].map((s) => RowRng.fromSeed(s).nextUniform());
    for (let i = 0; i < firsts.length; i++) {
      for (let j = i + 1; j < firsts.length; j++) assert.ok(Math.abs(firsts[i]! - firsts[j]!) > 1e-4, `seeds ${i} and ${j}`);
    }
  });

  it('uses every bit of a large or negative seed', () => {
    const big = 2 ** 40 + 1;
    assert.notDeepEqual(draws(RowRng.fromSeed(big), 4), draws(RowRng.fromSeed(1), 4));
    assert.notDeepEqual(draws(RowRng.fromSeed(-1), 4), draws(RowRng.fromSeed(1), 4));
  });

  it('rejects non-integer seeds', () => {
    assert.throws(() => RowRng.fromSeed(1.5), RangeError);
    assert.throws(() => RowRng.fromSeed(Number.NaN), RangeError);
  });

  it('without a seed draws fresh entropy', () => {
    assert.notDeepEqual(draws(createRowRng(undefined), 4), draws(createRowRng(undefined), 4));
    assert.deepEqual(draws(createRowRng(9), 4), draws(RowRng.fromSeed(9), 4));
  });
});
