/**
 * Requests whose every field is within its own limit but whose product is huge, and requests with
 * huge collections: refused with a 400 naming the field, before any generation starts and without
 * reading the rest of the body, sizes checked before elements.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'node:http';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/**
 * Sends `body` in 64 KB writes, each one waiting for the socket to take it, and notes how many bytes
 * were written when the answer arrived. An answer before the last byte shows the server refused the
 * body from what had arrived, without reading (let alone parsing) the rest; it then closes the
 * connection, so the writes stop there.
 */
async function sendInPieces(url: string, path: string, body: Buffer): Promise<{ status: number; error: ReturnType<typeof assertErrorShape>; writtenBeforeAnswer: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let written = 0;
    let writtenBeforeAnswer = -1;
    const req = request({ host: hostname, port, path, method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      writtenBeforeAnswer = written;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy(); // the rest of the body is never sent
        resolve({ status: res.statusCode!, error: assertErrorShape(JSON.parse(Buffer.concat(chunks).toString('utf8'))), writtenBeforeAnswer });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => (writtenBeforeAnswer < 0 ? reject(e) : undefined)); // the server hanging up after its answer is expected
    const writeNext = () => {
      if (writtenBeforeAnswer >= 0) return;
      if (written >= body.length) return req.end();
      const piece = body.subarray(written, written + 65_536);
      req.write(piece, (e) => {
        if (e) return;
        written += piece.length;
        setImmediate(writeNext);
      });
    };
    writeNext();
  });
}

/**
 * `prefix` + n items joined by commas + `suffix`, built in 64 KB pieces: one giant string per body
 * would leave hundreds of megabytes of garbage behind.
 */
function jsonList(prefix: string, n: number, item: (i: number) => string, suffix: string): Buffer {
  const pieces: Buffer[] = [Buffer.from(prefix)];
  let part = '';
  for (let i = 0; i < n; i++) {
    part += (i ? ',' : '') + item(i);
    if (part.length >= 65_536) {
      pieces.push(Buffer.from(part));
      part = '';
    }
  }
  pieces.push(Buffer.from(part + suffix));
  return Buffer.concat(pieces);
}

describe('hostile sizes', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({});
  });
  after(async () => {
    await s.close();
  });

  it('refuses a response that would be too large with a 400 naming the fields, before generating', async () => {
    // The request: every field within its limit, 511 MB of logprobs in the answer.
    const prompts = Array.from({ length: 32 }, () => Array.from({ length: 511 }, (_, i) => 1 + (i % 500)));
    const steps = () => (s.engine.stats.running + s.engine.stats.waiting);
    const r = await postJson(`${s.url}/v1/completions`, {
      prompt: prompts,
      n: 16,
      echo: true,
      logprobs: 20,
      prompt_logprobs: 20,
      return_tokens_as_token_ids: true,
    });
    assert.equal(r.status, 400);
    const e = assertErrorShape(r.body);
    assert.equal(e.code, 'response_too_large');
    assert.equal(e.param, 'echo');
    for (const field of ['max_tokens', 'echo', 'prompt_logprobs', 'max_logprob_entries']) assert.ok(e.message.includes(field), `the message names ${field}: ${e.message}`);
    assert.equal(steps(), 0, 'nothing reached the engine');
    assert.equal(s.app.attune.admission.admitted, 0);

    // stories260K's context keeps chat under the default bound; a lower one shows chat's accounting.
    const low = await startTestServer({ limits: { maxLogprobEntries: 10_000 } }, { engine: s.engine });
    try {
      const chat = await postJson(`${low.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Hi' }], n: 16, logprobs: true, top_logprobs: 20, max_completion_tokens: 500 });
      assert.equal(chat.status, 400);
      assert.deepEqual([assertErrorShape(chat.body).code, assertErrorShape(chat.body).param], ['response_too_large', 'max_completion_tokens']);
    } finally {
      await low.close();
    }
    // Within the bound, the same shape of request is served.
    const ok = await postJson(`${s.url}/v1/completions`, { prompt: [1, 2, 3], n: 2, echo: true, logprobs: 5, prompt_logprobs: 5, max_tokens: 4 });
    assert.equal(ok.status, 200);
  });

  it('refuses huge collections as they arrive, before the rest of the body is read', async () => {
    const cases: [string, string, Buffer][] = [
      ['1M calibration layer keys', '/v1/completions', jsonList('{"prompt":"x","calibration":{"act":{"heads":{', 1_000_000, (i) => `"${i}":[]`, '}}}}')],
      ['1.1M logit_bias keys', '/v1/completions', jsonList('{"prompt":"x","logit_bias":{', 1_100_000, (i) => `"${i}":1`, '}}')],
      ['8M prompt ids', '/v1/completions', jsonList('{"prompt":[', 8_000_000, () => '1', ']}')],
      ['a 4M-element head list', '/v1/completions', jsonList('{"prompt":"x","calibration":{"act":{"heads":{"2":[', 4_000_000, () => '0', ']}}}}')],
      ['8M ids to detokenize', '/detokenize', jsonList('{"tokens":[', 8_000_000, () => '1', ']}')],
      ['1M messages', '/v1/chat/completions', jsonList('{"messages":[', 1_000_000, () => '{}', ']}')],
    ];
    for (const [what, path, body] of cases) {
      // What held /health up for seconds before was parsing and validating the whole body; a refusal
      // that arrives before the body is all sent shows neither happened. (How long /health waits
      // beside such a body is a figure of `npm run bench:hostile`, not a test: tests do not time.)
      const r = await sendInPieces(s.url, path, body);
      assert.equal(r.status, 400, `${what}: ${r.error.message}`);
      assert.ok(r.error.param, `${what}: the refusal names a field`);
      assert.equal(r.error.code, 'body_too_complex', what);
      assert.ok(r.writtenBeforeAnswer < body.length / 2, `${what}: answered after ${r.writtenBeforeAnswer} of ${body.length} bytes`);
      const health = await fetch(`${s.url}/health`);
      assert.equal(health.status, 200);
    }
  });

  it('checks sizes before elements: the count is the error even when a late element is also bad', async () => {
    const cases: [string, string, unknown, string][] = [
      ['logit_bias', '/v1/completions', { prompt: 'x', logit_bias: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [String(i), i === 399 ? 500 : 1])) }, 'logit_bias'],
      ['prompt ids', '/v1/completions', { prompt: Array.from({ length: 600 }, (_, i) => (i === 599 ? -1 : 1)) }, 'prompt'],
      ['head list', '/v1/completions', { prompt: 'x', calibration: { act: { heads: { 2: Array.from({ length: 200 }, (_, i) => (i === 199 ? 'x' : 0)) } } } }, 'calibration.act.heads.2'],
      ['detokenize', '/detokenize', { tokens: Array.from({ length: 600 }, (_, i) => (i === 599 ? -1 : 1)) }, 'tokens'],
    ];
    for (const [what, path, body, param] of cases) {
      const r = await postJson(`${s.url}${path}`, body);
      assert.equal(r.status, 400, what);
      assert.equal(assertErrorShape(r.body).param, param, `${what}: ${assertErrorShape(r.body).message}`);
    }
  });
});
