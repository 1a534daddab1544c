import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RowRng } from '../../../src/engine/sampling/rng.js';
import {
  argmaxToken,
  filterCandidates,
  kthLargestLogit,
  nucleusThreshold,
  SamplingScratch,
  type SelectionParams,
  sampleFiltered,
  selectToken,
  validateSelectionParams,
} from '../../../src/engine/sampling/token-selection.js';

const OFF: SelectionParams = { temperature: 1, topK: 0, topP: 1, minP: 0 };
const PROBS = [0.4, 0.3, 0.15, 0.1, 0.05];
const LOGITS = Float32Array.from(PROBS, (p) => Math.log(p) + 3);

function kept(logits: Float32Array, params: Partial<SelectionParams>): number[] {
  const scratch = new SamplingScratch();
  filterCandidates(logits, { ...OFF, ...params }, scratch);
  return scratch.candidateIds();
}

/** Sampling frequencies over `n` draws from one seeded row. */
function frequencies(logits: Float32Array, params: Partial<SelectionParams>, n: number, seed = 1234): number[] {
  const scratch = new SamplingScratch();
  const rng = RowRng.fromSeed(seed);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[selectToken(logits, { ...OFF, ...params }, scratch, rng)]!++;
  return counts.map((c) => c / n);
}

function assertDistribution(freq: number[], expected: number[], tol = 0.015): void {
  expected.forEach((e, i) => {
    if (e === 0) assert.equal(freq[i], 0, `token ${i} is filtered out but was sampled`);
    else assert.ok(Math.abs(freq[i]! - e) < tol, `token ${i}: frequency ${freq[i]} vs ${e}`);
  });
}

function normalise(w: number[]): number[] {
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
}

describe('argmaxToken', () => {
  it('picks the largest logit, lowest id on ties', () => {
    assert.equal(argmaxToken(Float32Array.of(1, 5, 3, 5)), 1);
    assert.equal(argmaxToken(Float32Array.of(-Infinity, -3, -3)), 1);
  });

  it('skips NaN and refuses a row with nothing above -Infinity', () => {
    assert.equal(argmaxToken(Float32Array.of(Number.NaN, 0, Number.NaN)), 1);
    assert.throws(() => argmaxToken(Float32Array.of(-Infinity, Number.NaN)), RangeError);
  });

  it('selectToken is greedy below the temperature epsilon and draws nothing', () => {
    const noDraws = { nextUniform: (): number => assert.fail('greedy drew a number') };
    const logits = Float32Array.of(0, 2, 2, 1);
    assert.equal(selectToken(logits, { temperature: 0, topK: 1, topP: 0.1, minP: 0.9 }, new SamplingScratch(), noDraws), 1);
    assert.equal(selectToken(logits, { ...OFF, temperature: 5e-6 }, new SamplingScratch(), noDraws), 1);
  });
});

describe('filterCandidates: kept sets', () => {
  it('keeps every finite token when all filters are off, with weights proportional to probabilities', () => {
    const scratch = new SamplingScratch();
    const n = filterCandidates(LOGITS, OFF, scratch);
    assert.equal(n, 5);
    const probs = Array.from(scratch.weights.subarray(0, n), (w) => w / scratch.mass);
    probs.forEach((p, i) => assert.ok(Math.abs(p - PROBS[i]!) < 1e-6));
  });

  it('drops -Infinity and NaN logits', () => {
    assert.deepEqual(kept(Float32Array.of(1, -Infinity, Number.NaN, 0), {}), [0, 3]);
  });

  it('top-k keeps the k most likely, and all tokens tied with the k-th', () => {
    assert.deepEqual(kept(LOGITS, { topK: 2 }), [0, 1]);
    assert.deepEqual(kept(LOGITS, { topK: 1 }), [0]);
    assert.deepEqual(kept(LOGITS, { topK: 5 }), [0, 1, 2, 3, 4]);
    assert.deepEqual(kept(LOGITS, { topK: 50 }), [0, 1, 2, 3, 4]);
    assert.deepEqual(kept(Float32Array.of(1, 3, 2, 3, 0), { topK: 2 }), [1, 3]);
    assert.deepEqual(kept(Float32Array.of(1, 3, 2, 2, 0), { topK: 2 }), [1, 2, 3]);
  });

  it('top-p keeps the smallest most-likely set whose mass reaches p', () => {
    assert.deepEqual(kept(LOGITS, { topP: 0.3 }), [0]);
    assert.deepEqual(kept(LOGITS, { topP: 0.45 }), [0, 1]);
    assert.deepEqual(kept(LOGITS, { topP: 0.75 }), [0, 1, 2]);
    assert.deepEqual(kept(LOGITS, { topP: 0.9 }), [0, 1, 2, 3]);
    assert.deepEqual(kept(LOGITS, { topP: 0.99 }), [0, 1, 2, 3, 4]);
    assert.deepEqual(kept(LOGITS, { topP: 1e-9 }), [0], 'at least one token survives');
  });

  it('min-p drops tokens below minP times the top probability', () => {
    assert.deepEqual(kept(LOGITS, { minP: 0.3 }), [0, 1, 2]); // cut 0.12
    assert.deepEqual(kept(LOGITS, { minP: 0.2 }), [0, 1, 2, 3]); // cut 0.08
    assert.deepEqual(kept(LOGITS, { minP: 1 }), [0]);
  });

  it('temperature reshapes the distribution before min-p and top-p', () => {
    // At T = 2 the ratios to the top are sqrt(p / 0.4): 1, .87, .61, .5, .35.
    assert.deepEqual(kept(LOGITS, { temperature: 2, minP: 0.4 }), [0, 1, 2, 3]);
    // At T = 0.5 the probabilities are ∝ p²: .561, .316, .079, .035, .009.
    assert.deepEqual(kept(LOGITS, { temperature: 0.5, topP: 0.8 }), [0, 1]);
  });

  it('applies min-p, then top-k, then top-p over the renormalised survivors', () => {
    // min-p 0.3 keeps {0,1,2} (mass .85); renormalised .47, .35, .18, so top-p 0.75 stops at token 1.
    // Without renormalisation .4 + .3 = .7 < .75 would have kept token 2 as well.
    assert.deepEqual(kept(LOGITS, { minP: 0.3, topP: 0.75 }), [0, 1]);
    // top-k 3 then top-p 0.8 over .47/.35/.18: .82 ≥ .8 at token 1.
    assert.deepEqual(kept(LOGITS, { topK: 3, topP: 0.8 }), [0, 1]);
    assert.deepEqual(kept(LOGITS, { topP: 0.8 }), [0, 1, 2]);
    // min-p 0.2 → {0..3}; top-k 2 → {0,1}; top-p .99 keeps both.
    assert.deepEqual(kept(LOGITS, { minP: 0.2, topK: 2, topP: 0.99 }), [0, 1]);
  });

  it('works on a large vocabulary with many ties', () => {
    const v = 50_000;
    const logits = new Float32Array(v);
    for (let i = 0; i < v; i++) logits[i] = (i * 7919) % 97 / 10; // heavy ties
    const sorted = Array.from(logits).sort((a, b) => b - a);
    const kth = sorted[99]!;
    const expected = [...logits.keys()].filter((i) => logits[i]! >= kth);
    assert.deepEqual(kept(logits, { topK: 100 }), expected);

    // Reference nucleus by full sort.
    const t = 0.7;
    const w = Array.from(logits, (l) => Math.exp((l - sorted[0]!) / t));
    const mass = w.reduce((a, b) => a + b, 0);
    const order = [...w.keys()].sort((a, b) => w[b]! - w[a]! || a - b);
    let acc = 0;
    let thr = 0;
    for (const i of order) {
      acc += w[i]!;
      if (acc >= 0.6 * mass) {
        thr = w[i]!;
        break;
      }
    }
    const nucleus = [...w.keys()].filter((i) => w[i]! >= thr);
    assert.deepEqual(kept(logits, { temperature: t, topP: 0.6 }), nucleus);
  });
});

describe('filterCandidates: large vocabularies (bucketed top-p)', () => {
  function referenceNucleus(logits: Float32Array, t: number, p: number): number[] {
    const max = Math.max(...logits);
    const w = Array.from(logits, (l) => Math.exp((l - max) / t));
    const mass = w.reduce((a, b) => a + b, 0);
    const order = [...w.keys()].sort((a, b) => w[b]! - w[a]! || a - b);
    let acc = 0;
    for (const i of order) {
      acc += w[i]!;
      if (acc >= p * mass) return [...w.keys()].filter((j) => w[j]! >= w[i]!);
    }
    return [...w.keys()];
  }

  for (const [name, spread] of [['peaked', 12], ['flat', 0.5], ['very flat', 0.001]] as const) {
    it(`top-p matches a full sort on a ${name} 30k-token distribution`, () => {
      const rng = RowRng.fromSeed(11);
      const logits = Float32Array.from({ length: 30_000 }, () => (rng.nextUniform() - rng.nextUniform()) * spread);
      for (const [t, p] of [[1, 0.9], [0.7, 0.5], [1.3, 0.99], [1, 0.05]] as const) {
        assert.deepEqual(kept(logits, { temperature: t, topP: p }), referenceNucleus(logits, t, p), `T=${t} p=${p}`);
      }
    });
  }
});

describe('selection helpers', () => {
  it('kthLargestLogit matches a sort on random data with ties, honouring the cut', () => {
    const rng = RowRng.fromSeed(5);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(rng.nextUniform() * 400);
      const data = Float32Array.from({ length: n }, () => (rng.nextUniform() < 0.05 ? -Infinity : Math.floor(rng.nextUniform() * 30)));
      const cut = trial % 3 === 0 ? 10 : -Infinity;
      const eligible = Array.from(data).filter((v) => v >= cut && v > -Infinity).sort((a, b) => b - a);
      const k = 1 + Math.floor(rng.nextUniform() * n);
      const want = k <= eligible.length ? eligible[k - 1] : -Infinity;
      assert.equal(kthLargestLogit(data, k, cut, new Float64Array(k)), want, `trial ${trial}`);
    }
  });

  it('nucleusThreshold matches a sort on random data with ties', () => {
    const rng = RowRng.fromSeed(6);
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(rng.nextUniform() * 400);
      const data = Float64Array.from({ length: n }, () => Math.floor(rng.nextUniform() * 20) / 4);
      const sorted = Array.from(data).sort((a, b) => b - a);
      const mass = sorted.reduce((a, b) => a + b, 0);
      const target = rng.nextUniform() * mass * 0.999 + 1e-9;
      let acc = 0;
      let expected = sorted[sorted.length - 1]!;
      for (const v of sorted) {
        acc += v;
        if (acc >= target) {
          expected = v;
          break;
        }
      }
      assert.equal(nucleusThreshold(Float64Array.from(data), n, target), expected);
    }
  });

  it('sampleFiltered inverts the CDF in id order', () => {
    const scratch = new SamplingScratch();
    filterCandidates(Float32Array.from([0.5, 0.25, 0.25], Math.log), OFF, scratch);
    assert.equal(sampleFiltered(scratch, 0), 0);
    assert.equal(sampleFiltered(scratch, 0.49), 0);
    assert.equal(sampleFiltered(scratch, 0.51), 1);
    assert.equal(sampleFiltered(scratch, 0.76), 2);
    assert.equal(sampleFiltered(scratch, 1 - 2 ** -53), 2);
  });

  it('validateSelectionParams rejects values outside the filters’ domains', () => {
    assert.throws(() => validateSelectionParams({ ...OFF, temperature: -1 }), RangeError);
    assert.throws(() => validateSelectionParams({ ...OFF, topK: -1 }), RangeError);
    assert.throws(() => validateSelectionParams({ ...OFF, topK: 1.5 }), RangeError);
    assert.throws(() => validateSelectionParams({ ...OFF, topP: 0 }), RangeError);
    assert.throws(() => validateSelectionParams({ ...OFF, minP: 1.1 }), RangeError);
    validateSelectionParams({ temperature: 0, topK: 0, topP: 1, minP: 0 });
  });
});

describe('sampling statistics (5-token vocabulary, fixed seed)', () => {
  const N = 40_000;

  it('temperature 1 reproduces the model distribution', () => {
    assertDistribution(frequencies(LOGITS, {}, N), PROBS);
  });

  it('temperature 0.5 sharpens it to p²', () => {
    assertDistribution(frequencies(LOGITS, { temperature: 0.5 }, N), normalise(PROBS.map((p) => p * p)));
  });

  it('top-k 2 samples only the two most likely, renormalised', () => {
    assertDistribution(frequencies(LOGITS, { topK: 2 }, N), normalise([0.4, 0.3, 0, 0, 0]));
  });

  it('top-p 0.8 samples {0,1,2} renormalised', () => {
    assertDistribution(frequencies(LOGITS, { topP: 0.8 }, N), normalise([0.4, 0.3, 0.15, 0, 0]));
  });

  it('min-p 0.3 samples {0,1,2} renormalised', () => {
    assertDistribution(frequencies(LOGITS, { minP: 0.3 }, N), normalise([0.4, 0.3, 0.15, 0, 0]));
  });

  it('min-p then top-p samples {0,1}', () => {
    assertDistribution(frequencies(LOGITS, { minP: 0.3, topP: 0.75 }, N), normalise([0.4, 0.3, 0, 0, 0]));
  });
});
