/**
 * Operations against real servers sharing one real engine with a single batch slot: a full queue
 * (429 + Retry-After, in requests and in tokens), client disconnects that free the slot and count
 * as aborted, the per-request timeout, not-ready and draining (503), and an in-process drain.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { Completion } from '../helpers/openai-types.js';
import { collectSse, postStream, readSse } from '../helpers/sse.js';
import { startEngine, startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

/** Long enough to hold the slot until the test lets go: 500 tokens, EOS ignored. */
const LONG = { prompt: [1], max_tokens: 500, temperature: 0, ignore_eos: true };

/** Opens a long stream and waits for its first event, so it holds the batch slot. */
async function holdSlot(url: string): Promise<{ abort: () => void; rest: Promise<unknown> }> {
  const controller = new AbortController();
  const res = await postStream(`${url}/v1/completions`, { ...LONG, stream: true }, { signal: controller.signal });
  assert.equal(res.status, 200);
  const reader = readSse(res);
  await reader.events.next();
  const rest = (async () => {
    for await (const _ of reader.events);
  })().catch(() => undefined);
  return { abort: () => controller.abort(), rest };
}

async function kvUsage(url: string): Promise<number> {
  return metricValue(await scrape(url), 'attune:kv_cache_usage_perc')!;
}

describe('operations', () => {
  let engine: EngineClient;
  let tight: TestServer;
  before(async () => {
    engine = await startEngine({ maxBatch: 1 });
    tight = await startTestServer({ engine: { maxBatch: 1 }, queue: { maxQueuedRequests: 0, retryAfterSeconds: 2 } }, { engine });
  });
  after(async () => {
    await tight.close();
    await engine.close();
  });

  it('answers 429 with Retry-After when the queue is full, and frees the slot when the client disconnects mid-stream', async () => {
    const held = await holdSlot(tight.url);
    assert.equal(await kvUsage(tight.url), 1);

    const refused = await postJson(`${tight.url}/v1/completions`, { prompt: 'Once', max_tokens: 2 });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '2');
    const e = assertErrorShape(refused.body);
    assert.equal(e.type, 'rate_limit_error');
    assert.equal(e.code, 'overloaded');

    held.abort();
    await held.rest;
    await waitFor(async () => (await kvUsage(tight.url)) === 0, 'the slot to be freed');
    await waitFor(() => tight.app.attune.admission.admitted === 0, 'admission to be released');
    const text = await scrape(tight.url);
    assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'aborted' }), 1);
    assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'overloaded' }), 1);

    const again = await postJson<Completion>(`${tight.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 2, temperature: 0 });
    assert.equal(again.status, 200);
  });

  it('aborts a non-streaming generation whose client went away', async () => {
    const before = metricValue(await scrape(tight.url), 'attune:request_failure_total', { reason: 'aborted' })!;
    const controller = new AbortController();
    const pending = fetch(`${tight.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(LONG),
      signal: controller.signal,
    }).catch((err: unknown) => err);
    await waitFor(async () => (await kvUsage(tight.url)) === 1, 'the request to take the slot');
    controller.abort();
    await pending;
    await waitFor(async () => (await kvUsage(tight.url)) === 0, 'the slot to be freed');
    await waitFor(async () => metricValue(await scrape(tight.url), 'attune:request_failure_total', { reason: 'aborted' }) === before + 1, 'the abort to be counted');
  });

  it('bounds queued prompt tokens too', async () => {
    const s = await startTestServer({ engine: { maxBatch: 1 }, queue: { maxQueuedRequests: 8, maxQueuedTokens: 8 } }, { engine });
    try {
      const held = await holdSlot(s.url);
      const waiting = new AbortController();
      const queued = fetch(`${s.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: [1, 403, 407, 261, 378, 13], max_tokens: 2 }),
        signal: waiting.signal,
      }).catch((err: unknown) => err);
      await waitFor(() => s.app.attune.admission.queuedTokens === 6, 'the second request to queue');

      const refused = await postJson(`${s.url}/v1/completions`, { prompt: [1, 403, 407], max_tokens: 2 });
      assert.equal(refused.status, 429);
      assert.ok(refused.headers.get('retry-after'));
      assert.match(assertErrorShape(refused.body).message, /max_queued_tokens/);

      waiting.abort();
      held.abort();
      await Promise.all([queued, held.rest]);
      await waitFor(() => s.app.attune.admission.admitted === 0 && s.app.attune.admission.queuedTokens === 0, 'admission to be released');
      await waitFor(() => engine.stats.slotsInUse === 0, 'the slot to be freed');
    } finally {
      await s.close();
    }
  });

  it('opens a queued stream after one keep-alive interval and keeps it alive with comments', async () => {
    const s = await startTestServer({ engine: { maxBatch: 1 }, sseKeepAliveSeconds: 0.02 }, { engine });
    try {
      const held = await holdSlot(s.url);
      const res = await postStream(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Lily' }], max_tokens: 3, stream: true });
      assert.equal(res.status, 200, 'headers go out while the request still waits for a slot');
      const body = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!(text.includes('"role":"assistant"') && text.includes(': keep-alive'))) {
        const { value, done } = await body.read();
        assert.ok(!done, 'the stream ended early');
        text += decoder.decode(value, { stream: true });
      }
      held.abort();
      await held.rest;
      for (;;) {
        const { value, done } = await body.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      assert.match(text, /"finish_reason":"length"/);
      assert.ok(text.endsWith('data: [DONE]\n\n'));
    } finally {
      await s.close();
    }
  });

  it('times a request out with 408 and counts it', async () => {
    const s = await startTestServer({ engine: { maxBatch: 1 }, requestTimeoutSeconds: 0.001 }, { engine });
    try {
      const r = await postJson(`${s.url}/v1/completions`, LONG);
      assert.equal(r.status, 408);
      const e = assertErrorShape(r.body);
      assert.equal(e.type, 'timeout_error');
      assert.equal(e.code, 'request_timeout');

      // A stream that times out answers 408 too, or, if it had already opened, ends with an error event.
      const res = await postStream(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Lily' }], max_tokens: 500, ignore_eos: true, stream: true });
      if (res.status === 200) {
        const { chunks, done } = await collectSse<{ error?: { code: string } }>(res);
        assert.equal(done, false);
        assert.equal(chunks[chunks.length - 1]!.error?.code, 'request_timeout');
      } else {
        assert.equal(res.status, 408);
        assertErrorShape(await res.json());
      }
      await waitFor(() => engine.stats.slotsInUse === 0, 'the slot to be freed');
      assert.equal(metricValue(await scrape(s.url), 'attune:request_failure_total', { reason: 'timeout' }), 2);
    } finally {
      await s.close();
    }
  });

  it('answers 503 with Retry-After while the engine is not ready; /health stays open', async () => {
    const down = await startEngine({ maxBatch: 1 });
    const s = await startTestServer({}, { engine: down });
    try {
      assert.equal((await getJson(`${s.url}/ready`)).status, 200);
      await down.close();
      const r = await postJson(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(r.status, 503);
      assert.ok(r.headers.get('retry-after'));
      assert.equal(assertErrorShape(r.body).type, 'unavailable_error');
      const ready = await getJson(`${s.url}/ready`);
      assert.equal(ready.status, 503);
      assert.match(assertErrorShape(ready.body).message, /not ready/);
      assert.equal((await getJson(`${s.url}/health`)).status, 200);
    } finally {
      await s.close();
    }
  });

  it('drains in process: in-flight streams finish, new requests get 503, then the server closes', async () => {
    const s = await startTestServer({ engine: { maxBatch: 1 } }, { engine });
    const res = await postStream(`${s.url}/v1/completions`, { prompt: [1], max_tokens: 300, temperature: 0, ignore_eos: true, stream: true });
    const reader = readSse(res);
    await reader.events.next();
    const drained = s.app.attune.drain(60);

    const refused = await postJson(`${s.url}/v1/completions`, { prompt: 'Once', max_tokens: 2 });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('connection'), 'close');
    assert.match(assertErrorShape(refused.body).message, /shutting down/);
    assert.equal((await getJson(`${s.url}/ready`)).status, 503);

    let done = false;
    let finish: string | null = null;
    for await (const e of reader.events) {
      if (e.data === '[DONE]') done = true;
      else finish = (JSON.parse(e.data) as Completion).choices[0]?.finish_reason ?? finish;
    }
    assert.ok(done, 'the in-flight stream completed');
    assert.equal(finish, 'length');
    assert.deepEqual(await drained, { completed: true });
    await assert.rejects(fetch(`${s.url}/health`), 'closed after the drain');
  });

  it('aborts what is left when the drain times out', async () => {
    const s = await startTestServer({ engine: { maxBatch: 1 } }, { engine });
    const res = await postStream(`${s.url}/v1/completions`, { ...LONG, stream: true });
    const reader = readSse(res);
    await reader.events.next();
    const result = await s.app.attune.drain(0.001);
    assert.deepEqual(result, { completed: false });
    const rest: string[] = [];
    for await (const e of reader.events) rest.push(e.data);
    assert.ok(!rest.includes('[DONE]'));
    assert.match(rest[rest.length - 1]!, /"code":"unavailable"/);
    await waitFor(() => engine.stats.slotsInUse === 0, 'the slot to be freed');
    // It ran and was cut short: aborted, not refused at the door (overloaded).
    const text = await s.app.attune.metrics.render();
    assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'aborted' }), 1);
    assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'overloaded' }), 0);
  });

  it('answers 503 on a draining server', async () => {
    tight.app.attune.lifecycle.startDrain();
    const r = await postJson(`${tight.url}/v1/completions`, { prompt: 'Once', max_tokens: 2 });
    assert.equal(r.status, 503);
    assert.ok(r.headers.get('retry-after'));
    assert.equal((await getJson(`${tight.url}/ready`)).status, 503);
  });
});
