/**
 * The ORT session wrapper: feed names are checked in TypeScript (ORT silently ignores unknown ones),
 * a missing execution provider falls back to CPU, and the inputs_embeds variant of the decoder
 * computes the same logits as the input_ids one.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, type FixtureModel } from '../helpers/load-fixture-model.js';
import { compileDecoder, DECODER_IO } from '../../models/compiler/decoder-graph.js';
import { DecoderSession, OrtTensorCtor, type OrtTensor } from '../../src/engine/ort-session.js';
import { buildStepFeeds, stepShape } from '../../src/engine/step-feeds.js';

describe('DecoderSession', () => {
  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  function freshFeeds(session: DecoderSession, tokens: number[]): Record<string, OrtTensor> {
    const shape = stepShape([{ tokens, past: 0, allLogits: true }], 0);
    const feeds = buildStepFeeds(shape, m.weights.config.maxSeqLen, session.graph.geometry);
    for (const s of session.graph.states) feeds[s.name] = new OrtTensorCtor('float32', new Float32Array(0), [1, m.weights.config.nKvHeads, 0, m.weights.config.headDim]);
    return feeds;
  }

  it('rejects unknown and missing feed names before ORT sees them', async () => {
    const session = await DecoderSession.create(compileDecoder(m.weights));
    const feeds = freshFeeds(session, [1, 403]);
    await session.run(feeds);
    await assert.rejects(session.run({ ...feeds, 'act.beta': new OrtTensorCtor('float32', new Float32Array(1), [1]) }), /unknown \[act\.beta\]/);
    const { [DECODER_IO.pastBias]: _dropped, ...missing } = feeds;
    await assert.rejects(session.run(missing), /missing \[past_bias\]/);
  });

  it('falls back to CPU when a requested execution provider cannot load', async () => {
    const session = await DecoderSession.create(compileDecoder(m.weights), { providers: ['cuda'] });
    assert.equal(session.provider, 'cpu');
    await session.run(freshFeeds(session, [1]));
  });

  it('the inputs_embeds graph gives the same logits as the input_ids graph', async () => {
    const ids = await DecoderSession.create(compileDecoder(m.weights));
    const embeds = await DecoderSession.create(compileDecoder(m.weights, { input: 'embeds' }));
    assert.ok(embeds.graph.inputs.some((i) => i.name === DECODER_IO.inputsEmbeds));
    const tokens = m.tokenizer.encode('Once upon a time, there was', { addBos: true });
    const a = await ids.run(freshFeeds(ids, tokens));
    const feeds = freshFeeds(ids, tokens);
    delete feeds[DECODER_IO.inputIds];
    const D = m.weights.config.dim;
    const table = new Float32Array(tokens.length * D);
    tokens.forEach((t, i) => table.set(m.weights.tokenEmbedding.subarray(t * D, (t + 1) * D), i * D));
    feeds[DECODER_IO.inputsEmbeds] = new OrtTensorCtor('float32', table, [1, tokens.length, D]);
    const b = await embeds.run(feeds);
    assert.deepEqual(b.logits!.data, a.logits!.data);
  });
});
