/**
 * Auth, CORS, request ids and log hygiene: every route needs a Bearer key except /health, /ready
 * and (when configured) /metrics; CORS preflights need none; X-Request-Id is honoured when
 * plausible; neither keys nor prompts reach the logs unless prompt logging is on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { startEngine, startTestServer, type TestServer } from '../helpers/test-server.js';

const KEYS = ['key-one-7f3a', 'key-two-91bc'];
const body = { prompt: 'A secret prompt about Lily', max_tokens: 2, temperature: 0 };
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });

describe('auth, CORS and request ids', () => {
  let engine: EngineClient;
  let s: TestServer;
  const logs: string[] = [];
  before(async () => {
    engine = await startEngine();
    s = await startTestServer(
      { apiKeys: KEYS, corsOrigins: ['https://app.example'], logLevel: 'info' },
      { engine, logStream: { write: (line: string) => void logs.push(line) } },
    );
  });
  after(async () => {
    await s.close();
    await engine.close();
  });

  it('answers 401 without a key or with a wrong one, in the OpenAI shape', async () => {
    for (const headers of [{}, bearer('nope'), { authorization: KEYS[0]! }, { authorization: `Basic ${KEYS[0]}` }]) {
      const r = await postJson(`${s.url}/v1/completions`, body, headers);
      assert.equal(r.status, 401);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
      const e = assertErrorShape(r.body);
      assert.equal(e.code, 'invalid_api_key');
    }
    for (const path of ['/v1/models', '/v1/calibrators', '/metrics', '/no/such/route']) {
      assert.equal((await getJson(`${s.url}${path}`)).status, 401, path);
    }
    assert.equal((await postJson(`${s.url}/tokenize`, { prompt: 'x' })).status, 401);
  });

  it('answers 200 with any configured key', async () => {
    for (const key of KEYS) {
      const r = await postJson(`${s.url}/v1/completions`, body, bearer(key));
      assert.equal(r.status, 200);
    }
    assert.equal((await postJson(`${s.url}/v1/completions`, body, { authorization: `bearer ${KEYS[1]}` })).status, 200);
    assert.equal((await getJson(`${s.url}/metrics`, bearer(KEYS[0]!))).status, 200);
  });

  it('keeps /health and /ready open', async () => {
    assert.equal((await getJson(`${s.url}/health`)).status, 200);
    assert.equal((await getJson(`${s.url}/ready`)).status, 200);
  });

  it('opens /metrics when configured, and only /metrics', async () => {
    const open = await startTestServer({ apiKeys: KEYS, metricsPublic: true }, { engine });
    try {
      assert.equal((await getJson(`${open.url}/metrics`)).status, 200);
      assert.equal((await postJson(`${open.url}/v1/completions`, body)).status, 401);
    } finally {
      await open.close();
    }
  });

  it('answers CORS preflights without a key, for configured origins only', async () => {
    const pre = await fetch(`${s.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
    const r = await fetch(`${s.url}/v1/models`, { headers: { ...bearer(KEYS[0]!), origin: 'https://app.example' } });
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://app.example');
    const other = await fetch(`${s.url}/v1/models`, { headers: { ...bearer(KEYS[0]!), origin: 'https://evil.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  it('echoes a plausible X-Request-Id and replaces anything else', async () => {
    const r = await postJson(`${s.url}/v1/completions`, body, { ...bearer(KEYS[0]!), 'x-request-id': 'trace-42:abc' });
    assert.equal(r.headers.get('x-request-id'), 'trace-42:abc');
    const odd = await postJson(`${s.url}/v1/completions`, body, { ...bearer(KEYS[0]!), 'x-request-id': 'has spaces and "quotes"' });
    assert.match(odd.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    const denied = await postJson(`${s.url}/v1/completions`, body, { 'x-request-id': 'denied-1' });
    assert.equal(denied.headers.get('x-request-id'), 'denied-1', 'errors carry it too');
  });

  it('never logs keys or prompts', async () => {
    const text = logs.join('');
    assert.ok(text.includes('generation request'), 'requests were logged');
    for (const key of KEYS) assert.ok(!text.includes(key), 'a key reached the logs');
    assert.ok(!text.includes('secret prompt'), 'a prompt reached the logs');
  });

  it('logs prompts when asked to', async () => {
    const lines: string[] = [];
    const loud = await startTestServer({ logLevel: 'info', logPrompts: true }, { engine, logStream: { write: (l: string) => void lines.push(l) } });
    try {
      await postJson(`${loud.url}/v1/completions`, body);
      assert.ok(lines.join('').includes('secret prompt'));
    } finally {
      await loud.close();
    }
  });
});
