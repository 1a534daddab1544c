/**
 * The ORT session wrapper: feed names are checked in TypeScript (ORT silently ignores unknown ones),
 * a missing execution provider falls back to CPU, and the image splice overwrites exactly the
 * embeddings it is given (and nothing when it is given none).
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
    const shape = stepShape([{ tokens, past: 0, allLogits: true, images: [] }], 0);
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

  it('the image splice overwrites exactly the given embeddings, and none when given none', async () => {
    const plain = await DecoderSession.create(compileDecoder(m.weights));
    const spliced = await DecoderSession.create(compileDecoder(m.weights, { imageSplice: true }));
    const tokens = m.tokenizer.encode('Once upon a time, there was', { addBos: true });
    const expected = await plain.run(freshFeeds(plain, tokens));
    const D = m.weights.config.dim;
    const splice = (positions: number[], ids: number[]) => {
      const rows = new Float32Array(positions.length * D);
      positions.forEach((p, i) => rows.set(m.weights.tokenEmbedding.subarray(tokens[p]! * D, (tokens[p]! + 1) * D), i * D));
      const feeds = freshFeeds(spliced, ids);
      feeds[DECODER_IO.imageFeatures] = new OrtTensorCtor('float32', rows, [positions.length, D]);
      feeds[DECODER_IO.imageSlots] = new OrtTensorCtor('int64', BigInt64Array.from(positions.flatMap((p) => [0n, BigInt(p)])), [positions.length, 2]);
      return spliced.run(feeds);
    };
    // Positions 2 and 4 hold a placeholder id; the splice puts back the real tokens' embeddings.
    const placeholders = tokens.map((t, p) => (p === 2 || p === 4 ? 0 : t));
    assert.deepEqual((await splice([2, 4], placeholders)).logits!.data, expected.logits!.data);
    assert.deepEqual((await splice([], tokens)).logits!.data, expected.logits!.data);
    assert.notDeepEqual((await splice([], placeholders)).logits!.data, expected.logits!.data);
  });
});
