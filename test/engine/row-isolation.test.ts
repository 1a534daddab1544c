/**
 * A row whose sampling fails takes nobody else down: the engine fails that row alone, and the row
 * batched with it gets exactly its solo tokens. (The API refuses such parameters; the engine must
 * still contain a failure it did not foresee.)
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, fixtureEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request } from '../helpers/engine-harness.js';

describe('row isolation', () => {
  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  it('a row whose processors make every logit infinite fails alone', async () => {
    const model = await fixtureEngineModel(m);
    const prompt = m.tokenizer.encode('Once upon a time', { addBos: true });
    const solo = await new InProcessEngine(model).run(request('solo', prompt, { maxTokens: 20 }));
    const engine = new InProcessEngine(model, { maxBatch: 4 });
    const good = engine.submit(request('good', prompt, { maxTokens: 20 }));
    // Every prompt token gets divided by 1e-300: +∞, and sampling at temperature 1 has nothing finite.
    const bad = engine.submit(request('bad', prompt, { maxTokens: 20, repetitionPenalty: 1e-300, temperature: 1, seed: 1 }));
    await engine.drain();
    assert.equal(bad.error?.reason, 'internal');
    assert.match(bad.error!.message, /sampling failed/);
    assert.equal(good.error, null);
    assert.deepEqual(good.tokenIds, solo.tokenIds);
    assert.equal(engine.core.stats.slotsInUse, 0);
  });
});
