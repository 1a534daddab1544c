/**
 * ORT logits vs the float64 reference: a long prefill, then decode steps through the KV cache, on a
 * GQA model (stories260K) and an MHA model (aidreams260K), and with the prompt split into chunks.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { stories260K, aidreams260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, fixtureEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request, maxAbsDiff } from '../helpers/engine-harness.js';
import { ReferenceDecoder } from '../reference/reference-forward.js';

const TOLERANCE = 1e-4;

function promptOf(m: FixtureModel, minTokens: number): number[] {
  const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ' +
    'One day, she saw a big red ball under a tree. She ran to the ball and picked it up. Her mom smiled and said they could play together. ' +
    'They played all day until the sun went down, and then they went home to eat dinner.';
  const ids = m.tokenizer.encode(text, { addBos: true });
  assert.ok(ids.length >= minTokens, `prompt has ${ids.length} tokens`);
  return ids;
}

async function checkParity(m: FixtureModel, engineOpts: { prefillChunk?: number }, promptLen: number, decodeSteps: number) {
  const prompt = promptOf(m, promptLen).slice(0, promptLen);
  const engine = new InProcessEngine(await fixtureEngineModel(m), { maxBatch: 2, ...engineOpts }, true);
  const r = await engine.run(request('p', prompt, { maxTokens: decodeSteps + 1, promptLogprobs: 0, ignoreEos: true }));
  assert.equal(r.error, null);
  assert.equal(r.tokenIds.length, decodeSteps + 1);

  const ref = new ReferenceDecoder(m.weights);
  const refPrefill = ref.step({ tokens: prompt });
  let worst = 0;
  refPrefill.forEach((row, pos) => (worst = Math.max(worst, maxAbsDiff(r.logits.get(pos)!, row))));
  // Decode: feed the tokens the engine chose, so both sides see the same sequence.
  for (let s = 0; s < decodeSteps; s++) {
    const [row] = ref.step({ tokens: [r.tokenIds[s]!] });
    worst = Math.max(worst, maxAbsDiff(r.logits.get(prompt.length + s)!, row!));
  }
  assert.ok(worst < TOLERANCE, `max |ORT - float64| = ${worst}`);
  return worst;
}

for (const [name, paths] of [['stories260K (GQA)', stories260K], ['aidreams260K (MHA)', aidreams260K]] as const) {
  describe(`parity with the float64 reference: ${name}`, () => {
    let m: FixtureModel;
    before(async () => {
      m = await loadLlama2cFixture(paths);
    });
    it('matches over a 100-token prefill and 50 decode steps (as many as the context allows)', async () => {
      // aidreams260K's context is 128 tokens, so it also runs a 77-token prefill with 50 decode steps.
      const ctx = m.weights.config.maxSeqLen;
      await checkParity(m, {}, 100, Math.min(50, ctx - 101));
      if (ctx < 151) await checkParity(m, {}, ctx - 51, 50);
    });
    it('matches when the prompt is prefilled in chunks', async () => {
      await checkParity(m, { prefillChunk: 32 }, 100, 10);
    });
  });
}
