/** A no-op fragment at every hook point must leave the output bit-identical to the plain graph. */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, fixtureEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { assertBitIdentical, InProcessEngine, request } from '../helpers/engine-harness.js';
import { noopFragments } from '../../models/compiler/noop-fragments.js';
import { HOOK_KINDS } from '../../models/compiler/hooks.js';

describe('identity: no-op fragments at every hook', () => {
  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  it('gives bit-identical logits to the plain graph over prefill and decode', async () => {
    const plainModel = await fixtureEngineModel(m);
    const hookedModel = await fixtureEngineModel(m, { extraFragments: noopFragments(), plainFastPath: false });
    const hooked = (await hookedModel.graphs.sessionFor([])).graph;
    assert.deepEqual(hooked.owners, ['noop'], 'every step must run the hooked graph');
    // Every hook kind of every layer got its fragment.
    const plainGraph = (await plainModel.graphs.sessionFor([])).graph;
    assert.ok(hooked.nodeCount >= plainGraph.nodeCount + HOOK_KINDS.length * m.weights.config.nLayers);
    assert.deepEqual(hooked.rowInputs.map((r) => r.name).sort(), ['noop.scale_attn', 'noop.scale_resid']);

    const prompt = m.tokenizer.encode('Once upon a time, there was a dog who liked to run.', { addBos: true });
    const runs = [];
    for (const model of [plainModel, hookedModel]) {
      const engine = new InProcessEngine(model, { prefillChunk: 8 }, true);
      runs.push(await engine.run(request('x', prompt, { maxTokens: 40, promptLogprobs: 0 })));
    }
    const [plain, withHooks] = runs as [NonNullable<(typeof runs)[0]>, NonNullable<(typeof runs)[0]>];
    assertBitIdentical(plain, withHooks);
  });
});
