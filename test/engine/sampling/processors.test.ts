import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { buildLogitsProcessors } from '../../../src/engine/sampling/build-processors.js';
import { LogitBiasProcessor } from '../../../src/engine/sampling/logit-bias.js';
import type { LogitsProcessor } from '../../../src/engine/sampling/logits-processor.js';
import { PresenceFrequencyPenaltyProcessor } from '../../../src/engine/sampling/presence-frequency-penalty.js';
import { RepetitionPenaltyProcessor } from '../../../src/engine/sampling/repetition-penalty.js';
import { TokenHistory } from '../../../src/engine/sampling/token-history.js';
import { BASE_PARAMS } from './params.js';

function history(prompt: number[], output: number[]): TokenHistory {
  const h = new TokenHistory(prompt);
  for (const id of output) h.append(id);
  return h;
}

function approx(actual: Float32Array, expected: number[]): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) < 1e-5, `index ${i}: ${actual[i]} vs ${e}`));
}


describe('TokenHistory', () => {
  it('keeps output counts and the prompt ∪ output set incrementally', () => {
    const h = history([5, 6, 5], [7, 7, 5]);
    assert.deepEqual(h.outputIds, [7, 7, 5]);
    assert.deepEqual([...h.outputCounts].sort(), [[5, 1], [7, 2]]);
    assert.deepEqual([...h.seenIds].sort(), [5, 6, 7]);
    assert.equal(h.outputCounts.has(6), false, 'prompt tokens are not output counts');
  });
});

describe('LogitBiasProcessor', () => {
  it('adds each bias to its token and ignores zero biases and ids beyond the vocabulary', () => {
    const p = new LogitBiasProcessor({ 0: 1.5, 2: -100, 3: 0, 99: 7 });
    assert.equal(p.size, 3);
    const logits = Float32Array.of(1, 2, 3, 4);
    p.process(history([], []), logits);
    approx(logits, [2.5, 2, -97, 4]);
  });

  it('rejects malformed ids and non-finite biases', () => {
    assert.throws(() => new LogitBiasProcessor({ [-1]: 1 }), RangeError);
    assert.throws(() => new LogitBiasProcessor({ 1: Number.NaN }), RangeError);
  });
});

describe('RepetitionPenaltyProcessor', () => {
  it('divides positive and multiplies non-positive logits of tokens seen in prompt or output', () => {
    const logits = Float32Array.of(2, -2, 5, 0.5, -1, 0);
    new RepetitionPenaltyProcessor(2).process(history([0, 1, 5], [3, 3]), logits);
    approx(logits, [1, -4, 5, 0.25, -1, 0]);
  });

  it('with a penalty below 1 favours seen tokens instead', () => {
    const logits = Float32Array.of(2, -2);
    new RepetitionPenaltyProcessor(0.5).process(history([0, 1], []), logits);
    approx(logits, [4, -1]);
  });

  it('rejects a non-positive penalty', () => {
    assert.throws(() => new RepetitionPenaltyProcessor(0), RangeError);
  });
});

describe('PresenceFrequencyPenaltyProcessor', () => {
  it('subtracts presence once and frequency per occurrence, over output tokens only', () => {
    const logits = new Float32Array(5);
    new PresenceFrequencyPenaltyProcessor(0.5, 0.25).process(history([0, 2], [1, 1, 3]), logits);
    approx(logits, [0, -1, 0, -0.75, 0]);
  });

  it('negative penalties encourage repeats', () => {
    const logits = Float32Array.of(1, 1);
    new PresenceFrequencyPenaltyProcessor(-1, -0.5).process(history([], [1, 1]), logits);
    approx(logits, [1, 3]);
  });
});

describe('buildLogitsProcessors', () => {
  it('includes nothing for default parameters', () => {
    assert.deepEqual(buildLogitsProcessors(BASE_PARAMS), []);
    assert.deepEqual(buildLogitsProcessors({ ...BASE_PARAMS, logitBias: { 3: 0 } }), []);
  });

  it('includes only active processors, in vLLM order, with extras last', () => {
    const extra: LogitsProcessor = { process: () => {} };
    const all = buildLogitsProcessors(
      { ...BASE_PARAMS, logitBias: { 1: 2 }, repetitionPenalty: 1.2, presencePenalty: 0, frequencyPenalty: 0.1 },
      [extra],
    );
    assert.equal(all.length, 4);
    assert.ok(all[0] instanceof LogitBiasProcessor);
    assert.ok(all[1] instanceof RepetitionPenaltyProcessor);
    assert.ok(all[2] instanceof PresenceFrequencyPenaltyProcessor);
    assert.equal(all[3], extra);

    const onlyPresence = buildLogitsProcessors({ ...BASE_PARAMS, presencePenalty: 0.3 });
    assert.equal(onlyPresence.length, 1);
    assert.ok(onlyPresence[0] instanceof PresenceFrequencyPenaltyProcessor);
  });

  it('applies bias before the repetition penalty, as vLLM does', () => {
    const logits = Float32Array.of(1, 0);
    const h = history([0], []);
    for (const p of buildLogitsProcessors({ ...BASE_PARAMS, logitBias: { 0: 3 }, repetitionPenalty: 2 })) p.process(h, logits);
    approx(logits, [2, 0]);
  });
});
