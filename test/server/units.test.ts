/** The server's pure parts, without a server: admission accounting, image headers, metric buckets, bearer parsing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearerToken } from '../../plugins/auth.js';
import { Admission } from '../../src/api/admission.js';
import { ApiError } from '../../src/api/errors.js';
import { readImageSize } from '../../src/api/images/image-header.js';
import { bucketsForField } from '../../src/observability/report-histograms.js';
import { COUNT_BUCKETS, RATIO_BUCKETS } from '../../src/observability/buckets.js';

function status(fn: () => unknown): number | null {
  try {
    fn();
    return null;
  } catch (e) {
    assert.ok(e instanceof ApiError);
    return e.statusCode;
  }
}

describe('admission', () => {
  const limits = { slots: 2, maxQueuedRequests: 1, maxQueuedTokens: 10, retryAfterSeconds: 3 };

  it('bounds admitted sequences at slots + queue, and frees them on release', () => {
    const a = new Admission(limits, () => null);
    const t1 = a.admit(2);
    const t2 = a.admit(1);
    assert.equal(status(() => a.admit(1)), 429);
    assert.equal(status(() => a.gate()), 429);
    t1.release();
    t1.release();
    assert.equal(a.admitted, 1);
    a.admit(2).release();
    t2.release();
    assert.equal(a.admitted, 0);
    // One request larger than the whole capacity still gets in when nothing else is admitted.
    a.admit(5).release();
  });

  it('bounds queued prompt tokens until sequences start', () => {
    const a = new Admission({ ...limits, maxQueuedRequests: 10 }, () => null);
    const t1 = a.admit(2);
    t1.reserveTokens([4, 5]);
    assert.equal(a.queuedTokens, 9);
    const t2 = a.admit(1);
    assert.equal(status(() => t2.reserveTokens([2])), 429);
    t1.markStarted(0);
    t1.markStarted(0);
    assert.equal(a.queuedTokens, 5);
    t2.reserveTokens([2]);
    assert.equal(a.queuedTokens, 7);
    t1.release();
    t2.release();
    assert.equal(a.queuedTokens, 0);
    assert.equal(a.queued, 0);
    // A queue holding nothing takes any single request, however long its prompt.
    const big = a.admit(1);
    big.reserveTokens([1000]);
    big.release();
  });

  it('answers 503 while not serving, with Connection: close when draining', () => {
    let state: ReturnType<ConstructorParameters<typeof Admission>[1]> = { reason: 'draining', message: 'the server is shutting down' };
    const a = new Admission(limits, () => state);
    try {
      a.admit(1);
      assert.fail('admitted while draining');
    } catch (e) {
      assert.ok(e instanceof ApiError);
      assert.equal(e.statusCode, 503);
      assert.deepEqual(e.headers, { 'retry-after': '3', connection: 'close' });
    }
    state = { reason: 'not_ready', message: 'loading' };
    assert.equal(status(() => a.gate()), 503);
    state = null;
    assert.equal(status(() => a.gate()), null);
  });
});

describe('image headers', () => {
  it('reads PNG, JPEG and WebP sizes and refuses junk', () => {
    const png = Buffer.alloc(33);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(png);
    png.write('IHDR', 12, 'ascii');
    png.writeUInt32BE(640, 16);
    png.writeUInt32BE(480, 20);
    assert.deepEqual(readImageSize(png, 'image/png'), { width: 640, height: 480 });

    // Fill bytes and a restart marker before the frame header, which is SOF2 (progressive).
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xff, 0xd0, 0xff, 0xe1, 0x00, 0x02, 0xff, 0xc2, 0x00, 0x11, 0x08, 0x01, 0x00, 0x02, 0x00, 0x03, 0, 0, 0]);
    assert.deepEqual(readImageSize(jpeg, 'image/jpeg'), { width: 512, height: 256 });
    // DHT (C4) is not a frame header.
    const dhtOnly = Buffer.from([0xff, 0xd8, 0xff, 0xc4, 0x00, 0x04, 0x00, 0x00, 0xff, 0xda, 0x00, 0x02]);
    assert.equal(readImageSize(dhtOnly, 'image/jpeg'), null);

    const riff = (chunk: string, body: number[]) => {
      const b = Buffer.alloc(40);
      b.write('RIFF', 0, 'ascii');
      b.write('WEBP', 8, 'ascii');
      b.write(chunk, 12, 'ascii');
      Buffer.from(body).copy(b, 20);
      return b;
    };
    assert.deepEqual(readImageSize(riff('VP8 ', [0, 0, 0, 0x9d, 0x01, 0x2a, 100, 0, 50, 0]), 'image/webp'), { width: 100, height: 50 });
    // VP8L: 14-bit width-1 and height-1, little-endian after the 0x2f signature.
    const bits = (300 - 1) | ((200 - 1) << 14);
    assert.deepEqual(readImageSize(riff('VP8L', [0x2f, bits & 255, (bits >> 8) & 255, (bits >> 16) & 255, (bits >>> 24) & 255]), 'image/webp'), { width: 300, height: 200 });
    assert.deepEqual(readImageSize(riff('VP8X', [0, 0, 0, 0, 0x1f, 0x03, 0, 0x0f, 0x02, 0]), 'image/webp'), { width: 800, height: 528 });

    assert.equal(readImageSize(Buffer.from('GIF89a...............................'), 'image/png'), null);
    assert.equal(readImageSize(Buffer.alloc(0), 'image/jpeg'), null);
    assert.equal(readImageSize(Buffer.alloc(40), 'image/webp'), null);
  });
});

describe('report histograms and auth helpers', () => {
  it('picks buckets by field name', () => {
    assert.equal(bucketsForField('sinks_detected'), COUNT_BUCKETS);
    assert.equal(bucketsForField('visual_share'), RATIO_BUCKETS);
    assert.ok(bucketsForField('prepare_seconds').includes(0.0001));
  });

  it('parses Bearer tokens strictly', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer  abc '), 'abc');
    assert.equal(bearerToken('Basic abc'), null);
    assert.equal(bearerToken('Bearer a b'), null);
    assert.equal(bearerToken(undefined), null);
  });
});

describe('token text for logprobs', () => {
  it('gives a byte-fallback token its raw byte, not the bytes of U+FFFD', async () => {
    const { loadLlama2cTokenizer } = await import('../../models/tokenizers/llama2c-tokenizer.js');
    const { TokenText } = await import('../../src/api/generation/token-text.js');
    const { stories260K } = await import('../helpers/models-dir.js');
    const tok = await loadLlama2cTokenizer(stories260K.tokenizer, 512);
    const text = new TokenText(tok);
    // "😀" is F0 9F 98 80 in UTF-8: tok512 has no piece for it, so it encodes as four byte tokens.
    const ids = tok.encode('😀', { addBos: false }).filter((id) => /^<0x/.test(tok.idToPiece(id)));
    assert.deepEqual(ids.map((id) => text.bytes(id)), [[0xf0], [0x9f], [0x98], [0x80]]);
    assert.deepEqual(text.bytes(tok.encode('Once', { addBos: false }).at(-1)!), [...Buffer.from(text.text(tok.encode('Once', { addBos: false }).at(-1)!), 'utf8')]);
  });
});
