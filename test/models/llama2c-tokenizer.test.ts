import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Llama2cTokenizer, loadLlama2cTokenizer } from '../../models/tokenizers/llama2c-tokenizer.js';
import { stories260K } from '../helpers/models-dir.js';

const bytes = readFileSync(stories260K.tokenizer);
const tok = Llama2cTokenizer.parse(bytes, 512);

/** run.c's encode, transcribed literally (quadratic rescans), as the oracle for the heap version. */
function referenceEncode(text: string, addBos: boolean): number[] {
  const pieces = Array.from({ length: 512 }, (_, i) => tok.idToPiece(i));
  const keys = pieces.map((_, i) => Buffer.from(rawPiece(i)).toString('latin1'));
  const lookup = (k: string) => keys.indexOf(k);
  const ids: number[] = addBos ? [1] : [];
  const b = Buffer.from(text, 'utf8');
  if (b.length > 0) ids.push(lookup(' '));
  let buf: number[] = [];
  for (let i = 0; i < b.length; i++) {
    if ((b[i]! & 0xc0) !== 0x80) buf = [];
    buf.push(b[i]!);
    if (i + 1 < b.length && (b[i + 1]! & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = lookup(Buffer.from(buf).toString('latin1'));
    if (id !== -1) ids.push(id);
    else for (const x of buf) ids.push(x + 3);
    buf = [];
  }
  for (;;) {
    let best = Math.fround(-1e10);
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < ids.length - 1; i++) {
      const id = lookup(keys[ids[i]!]! + keys[ids[i + 1]!]!);
      if (id !== -1 && tok.score(id) > best) {
        best = tok.score(id);
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    ids.splice(bestIdx, 2, bestId);
  }
  return ids;
}

function rawPiece(id: number): Uint8Array {
  let off = 4;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < id; i++) off += 8 + v.getInt32(off + 4, true);
  const len = v.getInt32(off + 4, true);
  return bytes.subarray(off + 8, off + 8 + len);
}

const SAMPLES = [
  'Once upon a time',
  'Hello, world!',
  'Lily\'s mom said, "Lily, let\'s go to the park."\nShe smiled.',
  '  leading spaces and trailing  ',
  'tabs\tand\nnewlines\r\n',
  'café naïve résumé — “quotes” ñ',
  'emoji 😀👍🏽 and CJK 日本語 and 한국어',
  '\u0000 nul and \u007f del',
  'a',
  ' ',
  'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz',
];

describe('llama2.c tokenizer (tok512.bin, run.c semantics)', () => {
  it('encodes the documented example', () => {
    assert.deepEqual(tok.encode('Once upon a time', { addBos: true }), [1, 403, 407, 261, 378]);
    assert.deepEqual(tok.encode('Once upon a time'), [403, 407, 261, 378]);
  });

  it('encodes the empty string to BOS alone, or to nothing', () => {
    assert.deepEqual(tok.encode('', { addBos: true }), [1]);
    assert.deepEqual(tok.encode(''), []);
  });

  it('matches a literal transcription of run.c on varied text', () => {
    for (const s of SAMPLES) assert.deepEqual(tok.encode(s, { addBos: true }), referenceEncode(s, true), JSON.stringify(s));
  });

  it('matches run.c on random strings', () => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz    ,.!?\'"\nTLSOé😀日';
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let t = 0; t < 40; t++) {
      const chars = Array.from(alphabet);
      const s = Array.from({ length: 1 + Math.floor(rnd() * 60) }, () => chars[Math.floor(rnd() * chars.length)]).join('');
      assert.deepEqual(tok.encode(s), referenceEncode(s, false), JSON.stringify(s));
    }
  });

  it('round-trips through decode, including byte-fallback characters', () => {
    for (const s of SAMPLES) {
      const ids = tok.encode(s, { addBos: true });
      assert.equal(tok.decode(ids, { skipSpecial: true }), s, JSON.stringify(s));
      // Without BOS the dummy-prefix space is part of the text, as run.c prints it.
      assert.equal(tok.decode(tok.encode(s)), s.length > 0 ? ' ' + s : '');
    }
  });

  it('uses byte fallback for characters outside the vocabulary', () => {
    const ids = tok.encode('😀');
    assert.deepEqual(ids.slice(-4), [...Buffer.from('😀')].map((b) => b + 3));
    assert.equal(tok.idToPiece(ids.at(-1)!), '<0x80>');
  });

  it('assembles UTF-8 split across tokens and strips the space after BOS only', () => {
    const ids = tok.encode('日本', { addBos: true });
    assert.equal(tok.decode(ids), '\n<s>\n日本');
    assert.equal(tok.decode(ids, { skipSpecial: true }), '日本');
    // A lone byte token decodes to the replacement character, not to an exception.
    assert.equal(tok.decode([0xe6 + 3]), '\ufffd');
    assert.deepEqual([...tok.pieceBytes(1, 403)], [...Buffer.from('Once')]);
    assert.deepEqual([...tok.pieceBytes(261, 403)], [...Buffer.from(' Once')]);
  });

  it('exposes run.c stop ids, BOS, and raw pieces', () => {
    assert.equal(tok.bosId, 1);
    assert.deepEqual(tok.stopIds, [1, 2]);
    assert.equal(tok.vocabSize, 512);
    assert.equal(tok.idToPiece(403), ' Once');
    assert.equal(tok.idToPiece(1), '\n<s>\n');
    assert.equal(tok.idToPiece(13), '<0x0A>');
    assert.throws(() => tok.idToPiece(512), RangeError);
    assert.throws(() => tok.decode([-1]), RangeError);
  });

  it('encodes 2,000 characters and decodes them back', () => {
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside. '.repeat(25).slice(0, 2000);
    const ids = tok.encode(text, { addBos: true });
    assert.equal(tok.decode(ids, { skipSpecial: true }), text);
  });

  it('rejects a file shorter than the model vocabulary', async () => {
    assert.throws(() => Llama2cTokenizer.parse(bytes, 513), /file ends at token 512/);
    await assert.rejects(loadLlama2cTokenizer('/nonexistent/tok.bin', 512), /nonexistent/);
  });
});
