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

describe('aborts', () => {
  it('an abort between steps frees the slot at once; one during a step, when the step ends', async () => {
    const m = await loadLlama2cFixture(stories260K);
    const engine = new InProcessEngine(await fixtureEngineModel(m), { maxBatch: 4 });
    const prompt = m.tokenizer.encode('Once upon a time', { addBos: true });
    const a = engine.submit(request('a', prompt, { maxTokens: 50 }));
    const b = engine.submit(request('b', prompt, { maxTokens: 50 }));
    for (let i = 0; i < 3; i++) await engine.core.step();
    assert.equal(engine.core.stats.slotsInUse, 2);
    engine.core.abort('a');
    assert.equal(engine.core.stats.slotsInUse, 1, 'freed before any further step');
    assert.equal(a.finish?.reason, 'abort');

    const stepping = engine.core.step();
    engine.core.abort('b'); // the step above is in flight
    assert.equal(engine.core.stats.slotsInUse, 1, 'a forward may still be reading the slot');
    await stepping;
    assert.equal(engine.core.stats.slotsInUse, 0, 'freed as that step ended');
    assert.equal(b.finish?.reason, 'abort');
    assert.ok(b.tokenIds.length < 50);
  });
});
