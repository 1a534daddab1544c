/**
 * Slow and greedy clients, over real sockets: stalled bodies, idle and unauthenticated sockets, the
 * connection cap, the body memory budget, clients that stop reading, compressed and oversized
 * bodies, and malformed HTTP. Deadlines here are short so that the tests are quick; the bounds the
 * tests wait under only stop a broken server from hanging them (today's server never closes these
 * connections at all).
 */
import assert from 'node:assert/strict';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import { openSocket, parseResponse, postHead, within } from '../helpers/raw-socket.js';
import { collectSse, postStream } from '../helpers/sse.js';
import { startEngine, startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

const closedBy = async (url: string, reason: string) => metricValue(await scrape(url), 'attune:http_connections_closed_total', { reason });
const failures = async (url: string, reason: string) => metricValue(await scrape(url), 'attune:request_failure_total', { reason });

describe('transport: slow and greedy clients', () => {
  let engine: EngineClient;
  const servers: TestServer[] = [];
  const serve = async (config: Parameters<typeof startTestServer>[0]) => {
    const s = await startTestServer(config, { engine });
    servers.push(s);
    return s;
  };
  before(async () => {
    engine = await startEngine({ maxBatch: 4 });
  });
  after(async () => {
    for (const s of servers) await s.close();
    await engine.close();
  });

  it('answers a body that stalls (or never starts) with 408 and closes the connection', async () => {
    const s = await serve({ http: { bodyTimeoutSeconds: 0.3 } });
    for (const partial of ['{"prompt": "Once', '']) {
      const c = await openSocket(s.url);
      c.socket.write(postHead('/v1/completions', 1000) + partial);
      await within(c.closed, 10_000, 'the stalled connection to be closed');
      const res = parseResponse(c.received());
      assert.equal(res.status, 408);
      assert.equal(res.headers.connection, 'close');
      assert.equal(assertErrorShape(JSON.parse(res.body)).code, 'body_timeout');
    }
    assert.equal(await closedBy(s.url, 'body_timeout'), 2);
    assert.equal(await failures(s.url, 'aborted'), 2, 'a body that never came is a client that went away');
    assert.equal(await failures(s.url, 'validation'), 0);
  });

  it('closes idle connections: one that sends nothing, and a keep-alive one after its request', async () => {
    const s = await serve({ http: { idleTimeoutSeconds: 0.3 } });
    const silent = await openSocket(s.url);
    await within(silent.closed, 10_000, 'the silent connection to be closed');
    const kept = await openSocket(s.url);
    kept.socket.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
    await within(kept.closed, 10_000, 'the idle keep-alive connection to be closed');
    assert.equal(parseResponse(kept.received()).status, 200);
    assert.equal(await closedBy(s.url, 'headers_timeout'), 1);
    assert.equal(await closedBy(s.url, 'idle_timeout'), 1);
  });

  it('keeps the connection of a small body refused at the door, reading and dropping the rest', async () => {
    const s = await serve({ apiKeys: ['secret'], http: { bodyTimeoutSeconds: 600 } });
    const c = await openSocket(s.url);
    const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 1 });
    c.socket.write(postHead('/v1/completions', Buffer.byteLength(body)));
    await waitFor(() => c.received().includes('\r\n\r\n{'), 'the 401');
    assert.equal(parseResponse(c.received()).status, 401);
    c.socket.write(body);
    // The rest of the body is read and dropped: the same connection takes the next request.
    c.socket.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor(() => c.received().toString().split('HTTP/1.1 ').length === 3, 'the second answer on the same connection');
    assert.match(c.received().toString(), /HTTP\/1\.1 200 OK/);
    c.socket.destroy();
  });

  it('closes the socket of an unauthenticated client even while its body still trickles in', async () => {
    const s = await serve({ apiKeys: ['secret'], http: { bodyTimeoutSeconds: 600 } });
    const c = await openSocket(s.url);
    c.socket.write(postHead('/v1/completions', 100_000) + '{"prompt": "');
    const trickle = setInterval(() => c.socket.write('a'), 20);
    try {
      await within(c.closed, 10_000, 'the unauthenticated connection to be closed');
    } finally {
      clearInterval(trickle);
    }
    const res = parseResponse(c.received());
    assert.equal(res.status, 401);
    assert.equal(res.headers.connection, 'close');
  });

  it('refuses connections beyond the cap with 503 and closes them, while /health still answers', async () => {
    const s = await serve({ http: { maxConnections: 2, idleTimeoutSeconds: 600 } });
    const held = [await openSocket(s.url), await openSocket(s.url)];
    try {
      const extra = await openSocket(s.url);
      extra.socket.write('POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
      await within(extra.closed, 10_000, 'the connection over the cap to be closed');
      const refused = parseResponse(extra.received());
      assert.equal(refused.status, 503);
      assert.ok(refused.headers['retry-after']);
      assert.equal(assertErrorShape(JSON.parse(refused.body)).code, 'too_many_connections');

      const probe = await openSocket(s.url);
      probe.socket.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
      await within(probe.closed, 10_000, 'the probe connection to be answered and closed');
      assert.equal(parseResponse(probe.received()).status, 200);
    } finally {
      for (const h of held) h.socket.destroy();
    }
    await waitFor(async () => (await fetch(`${s.url}/metrics`)).ok, 'room under the cap again');
    assert.ok((await closedBy(s.url, 'max_connections'))! >= 1);
  });

  it('refuses a body that does not fit the body memory budget while others are held', async () => {
    const s = await serve({ http: { bodyMemoryBytes: 64 * 1024, bodyTimeoutSeconds: 600 } });
    const slow = await openSocket(s.url);
    slow.socket.write(postHead('/v1/completions', 60_000) + '{"prompt": "');
    await waitFor(async () => (await fetch(`${s.url}/health`)).ok, 'the server to take the first body');
    const second = await openSocket(s.url);
    second.socket.write(postHead('/v1/completions', 60_000));
    // Refused at once; a body this small is then read and dropped, so the connection stays usable.
    await waitFor(() => second.received().includes('\r\n\r\n{'), 'the second upload to be refused');
    second.socket.destroy();
    const res = parseResponse(second.received());
    assert.equal(res.status, 503);
    assert.equal(assertErrorShape(JSON.parse(res.body)).code, 'body_memory_full');
    assert.equal(await closedBy(s.url, 'body_memory'), 1);
    slow.socket.destroy();
    // Once the first upload is gone, its bytes are free again.
    await waitFor(async () => (await postJson(`${s.url}/v1/completions`, { prompt: 'x'.repeat(50_000), max_tokens: 1 })).status !== 503, 'the budget to be released');
  });

  it('aborts a stream whose client reads nothing, frees its slot and counts it aborted', async () => {
    const s = await serve({ http: { writeTimeoutSeconds: 0.5 } });
    const body = JSON.stringify({ prompt: [1], max_tokens: 500, ignore_eos: true, n: 16, logprobs: 20, echo: true, stream: true, temperature: 1, seed: 1 });
    const c = await openSocket(s.url, { read: false });
    c.socket.write(postHead('/v1/completions', Buffer.byteLength(body)) + body);
    // A paused client socket does not see the close until it reads: watch the server's side.
    await waitFor(async () => (await closedBy(s.url, 'write_timeout')) === 1, 'the non-reading stream to be cut', 30_000);
    c.socket.destroy();
    await waitFor(() => engine.stats.slotsInUse === 0 && s.app.attune.admission.admitted === 0, 'the slots and admission to be released');
    assert.equal(await failures(s.url, 'aborted'), 1);
    assert.equal(await failures(s.url, 'internal'), 0);
  });

  it('cuts a JSON response nobody reads, and releases admission only then', async () => {
    const s = await serve({ http: { writeTimeoutSeconds: 0.5 } });
    // About 6 MB of JSON: more than loopback's socket buffers take, so the rest waits in the server.
    const body = JSON.stringify({ prompt: [1], max_tokens: 500, ignore_eos: true, n: 16, logprobs: 20, temperature: 1, seed: 1, return_tokens_as_token_ids: true });
    const c = await openSocket(s.url, { read: false });
    c.socket.write(postHead('/v1/completions', Buffer.byteLength(body)) + body);
    // The generation ends, but the unread body still holds its admission until the cut.
    await waitFor(() => engine.stats.slotsInUse === 0 && s.app.attune.admission.admitted === 16, 'the generation to finish with its body unsent');
    await waitFor(async () => (await closedBy(s.url, 'write_timeout')) === 1, 'the unread response to be cut', 30_000);
    c.socket.destroy();
    await waitFor(() => s.app.attune.admission.admitted === 0, 'admission to be released');
  });

  it('lets a live stream that reads outlast every timeout', async () => {
    const s = await serve({ http: { bodyTimeoutSeconds: 0.05, idleTimeoutSeconds: 0.05, writeTimeoutSeconds: 0.05 }, sseKeepAliveSeconds: 0.02 });
    const res = await postStream(`${s.url}/v1/completions`, { prompt: [1], max_tokens: 400, ignore_eos: true, n: 4, logprobs: 5, stream: true });
    assert.equal(res.status, 200);
    const { chunks, done } = await collectSse(res);
    assert.ok(done, 'the stream ended with [DONE]');
    assert.ok(chunks.length >= 400);
    for (const reason of ['body_timeout', 'idle_timeout', 'write_timeout']) assert.equal(await closedBy(s.url, reason), 0, reason);
  });

  it('reads gzip, deflate and br bodies, refuses other encodings with 415 and zip bombs with 413', async () => {
    const s = await serve({ limits: { bodyLimitBytes: 64 * 1024 } });
    const json = Buffer.from(JSON.stringify({ prompt: 'Once upon a time', max_tokens: 3, temperature: 0 }));
    const send = (body: Buffer, encoding: string) =>
      fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": encoding }, body: new Uint8Array(body) });
    for (const [encoding, body] of [['gzip', gzipSync(json)], ['deflate', deflateSync(json)], ['br', brotliCompressSync(json)]] as const) {
      const r = await send(body, encoding);
      assert.equal(r.status, 200, `${encoding}: ${await r.clone().text()}`);
      assert.equal(((await r.json()) as { choices: { text: string }[] }).choices[0]!.text, ', there was');
    }
    const zstd = await send(json, 'zstd');
    assert.equal(zstd.status, 415);
    assert.equal(assertErrorShape(await zstd.json()).code, 'unsupported_content_encoding');
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
    const r = await send(bomb, 'gzip');
    assert.equal(r.status, 413);
    assert.equal(assertErrorShape(await r.json()).code, 'body_too_large');
    const garbage = await send(Buffer.from('not gzip at all'), 'gzip');
    assert.equal(garbage.status, 400);
  });

  it('refuses a body with a huge array or object as it arrives, naming the field', async () => {
    const s = await serve({});
    const ids = `{"prompt": "x", "logit_bias": {${Array.from({ length: 200_000 }, (_, i) => `"${i}": 1`).join(',')}}}`;
    const r = await postJson(`${s.url}/v1/completions`, ids);
    assert.equal(r.status, 400);
    const e = assertErrorShape(r.body);
    assert.equal(e.param, 'logit_bias');
    assert.equal(e.code, 'body_too_complex');
    const deep = await postJson(`${s.url}/v1/completions`, `{"prompt": "x", "user": ${'['.repeat(100)}${']'.repeat(100)}}`);
    assert.equal(deep.status, 400);
    assert.match(assertErrorShape(deep.body).message, /nested deeper than/);
  });

  it('answers malformed HTTP and oversized headers in the error shape', async () => {
    const s = await serve({});
    for (const [bytes, status] of [
      ['NONSENSE\r\n\r\n', 400],
      [`GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ] as const) {
      const c = await openSocket(s.url);
      c.socket.write(bytes);
      await within(c.closed, 10_000, 'the connection to be closed');
      const res = parseResponse(c.received());
      assert.equal(res.status, status);
      assertErrorShape(JSON.parse(res.body));
    }
    assert.equal(await closedBy(s.url, 'bad_request'), 2);
  });
});
