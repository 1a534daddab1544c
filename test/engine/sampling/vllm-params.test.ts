/** vLLM's min_tokens processor, and the seeds n choices of one request get. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildLogitsProcessors } from '../../../src/engine/sampling/build-processors.js';
import { childSeeds } from '../../../src/engine/sampling/child-seeds.js';
import { TokenHistory } from '../../../src/engine/sampling/token-history.js';

describe('min_tokens', () => {
  const params = { logitBias: {}, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0 };

  it('holds EOS and the request stop ids back until min_tokens tokens are out', () => {
    const [p] = buildLogitsProcessors({ ...params, minTokens: 2, stopTokenIds: [5] }, [], [2]);
    const history = new TokenHistory([1]);
    for (let step = 0; step < 3; step++) {
      const logits = new Float32Array(8).fill(1);
      p!.process(history, logits);
      const banned = step < 2;
      assert.equal(logits[2], banned ? -Infinity : 1, `EOS at step ${step}`);
      assert.equal(logits[5], banned ? -Infinity : 1, `stop id at step ${step}`);
      assert.equal(logits[3], 1);
      history.append(3);
    }
  });

  it('leaves EOS alone with ignore_eos, and adds nothing when min_tokens is 0', () => {
    const [p] = buildLogitsProcessors({ ...params, minTokens: 1, stopTokenIds: [], ignoreEos: true }, [], [2]);
    const logits = new Float32Array(4).fill(1);
    p!.process(new TokenHistory([1]), logits);
    assert.equal(logits[2], 1);
    assert.deepEqual(buildLogitsProcessors({ ...params, minTokens: 0 }, [], [2]), []);
  });
});

describe('child seeds', () => {
  it('keeps the seed for the first choice and gives every choice a different safe integer', () => {
    for (const seed of [0, 1, -1, 42, 2 ** 53 - 8, 2 ** 53 - 1, -(2 ** 53 - 1)]) {
      const seeds = childSeeds(seed, 16);
      assert.equal(seeds[0], seed);
      assert.equal(new Set(seeds).size, 16, `seed ${seed}`);
      for (const s of seeds) assert.ok(Number.isSafeInteger(s));
      assert.deepEqual(childSeeds(seed, 16), seeds, 'deterministic');
      assert.deepEqual(childSeeds(seed, 4), seeds.slice(0, 4), 'a prefix of a longer fan-out');
    }
  });

  it('does not make choice 1 of one seed choice 0 of the next (vLLM’s seed + i did)', () => {
    assert.notEqual(childSeeds(7, 2)[1], 8);
    assert.notDeepEqual(childSeeds(7, 4).slice(1), childSeeds(8, 4).slice(0, 3));
  });
});
