/**
 * The slot pool's capacity follows the longest live row in power-of-two buckets, clipped to the
 * context (--max-model-len). A context that is not 64·2^k must not put the capacity off the ladder:
 * halving it from the top gives fractional capacities (258 → 129 → 64.5), which are not tensor
 * dims, and every request after that fails.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { stories260K } from '../helpers/models-dir.js';
import { fixtureEngineModel, loadLlama2cFixture, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request } from '../helpers/engine-harness.js';
import { SlotPool } from '../../src/engine/slot-pool.js';
import type { RowStateSpec } from '../../models/compiler/hooks.js';

describe('capacity buckets with a context that is not a power of two', () => {
  it('the pool never shrinks to a fractional capacity (unit)', () => {
    const kv: RowStateSpec = { name: 'k', outputName: 'k.update', dims: [2, 'keys', 3], update: 'append', owner: 'decoder' };
    const pool = new SlotPool([kv], 2, 258);
    const h = pool.acquire()!;
    pool.ensureCapacity(257);
    assert.equal(pool.capacity, 258);
    h.used = 10;
    pool.shrinkToFit();
    assert.ok(Number.isInteger(pool.capacity), `capacity ${pool.capacity}`);
    assert.equal(pool.capacity, 64, 'a row of 10 positions shrinks the pool to the smallest bucket');
    pool.release(h);
    pool.shrinkToFit();
    assert.equal(pool.capacity, 64);
  });

  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  it('a short request after a long one still runs (--max-model-len 258)', async () => {
    const model = await fixtureEngineModel(m);
    const engine = new InProcessEngine(model, { maxModelLen: 258, maxBatch: 2 });
    const prompt = m.tokenizer.encode('Once upon a time', { addBos: true });
    const long = await engine.run(request('long', prompt, { maxTokens: 258 - prompt.length, ignoreEos: true }));
    assert.equal(long.error, null);
    const short = await engine.run(request('short', prompt, { maxTokens: 4 }));
    assert.equal(short.error?.message ?? null, null);
    assert.equal(short.tokenIds.length, 4);
    const again = await engine.run(request('again', prompt, { maxTokens: 4 }));
    assert.equal(again.error?.message ?? null, null);
    assert.deepEqual(again.tokenIds, short.tokenIds);
  });
});
