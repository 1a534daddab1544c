/**
 * How failures are counted and logged: a client that resets as its stream opens, or leaves during
 * its upload, is `aborted` (never `internal` or `validation`, and never an error-level log line);
 * refusals the server chose (draining) are warnings without stack traces; query strings are redacted
 * in logs; and framework-level answers (a forbidden JSON key, a CORS preflight without a method) come
 * in the OpenAI error shape with the field named.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import { openSocket, postHead } from '../helpers/raw-socket.js';
import { startEngine, startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

interface LogLine {
  level: number;
  msg?: string;
  err?: unknown;
  req?: { url?: string };
}

describe('failure accounting and logs', () => {
  let engine: EngineClient;
  let s: TestServer;
  const logs: LogLine[] = [];
  const raw: string[] = [];
  before(async () => {
    engine = await startEngine({ maxBatch: 4 });
    s = await startTestServer(
      { logLevel: 'info', corsOrigins: ['https://app.example'] },
      {
        engine,
        logStream: {
          write(line: string) {
            raw.push(line);
            logs.push(JSON.parse(line) as LogLine);
          },
        },
      },
    );
  });
  after(async () => {
    await s.close();
    await engine.close();
  });
  const failures = async (reason: string) => metricValue(await scrape(s.url), 'attune:request_failure_total', { reason });
  const errorLines = () => logs.filter((l) => l.level >= 50);

  it('counts clients that reset as their stream opens as aborted, and logs no error', async () => {
    const body = JSON.stringify({ prompt: [1], max_tokens: 50, stream: true });
    const tries = 150;
    for (let i = 0; i < tries; i++) {
      const c = await openSocket(s.url);
      c.socket.write(postHead('/v1/completions', Buffer.byteLength(body)) + body);
      // Spread the resets over the moment the stream opens.
      await new Promise((r) => setTimeout(r, (i % 30) / 10));
      c.socket.resetAndDestroy();
    }
    await waitFor(() => s.app.attune.admission.admitted === 0 && engine.stats.slotsInUse === 0, 'the aborted streams to be released');
    // A reset can beat the request to the server (then there is no request to count), and a request
    // still on its way in when the slots are free is counted a moment later: so every request the
    // server logged must come to be counted as aborted, and almost all of them reach it.
    const seen = () => logs.filter((l) => l.msg === 'incoming request' && l.req?.url === '/v1/completions').length;
    await waitFor(async () => (await failures('aborted')) === seen(), 'every request the server saw to be counted as aborted');
    assert.ok(seen() >= tries - 10, `${seen()} of ${tries} requests reached the server`);
    assert.equal(await failures('internal'), 0);
    assert.deepEqual(errorLines(), []);
  });

  it('counts a client that leaves during its upload as aborted, not validation', async () => {
    const before = { aborted: await failures('aborted'), validation: await failures('validation') };
    const c = await openSocket(s.url);
    c.socket.write(postHead('/v1/completions', 10_000) + '{"prompt": "Once upon');
    await waitFor(async () => (await fetch(`${s.url}/health`)).ok, 'the server to read the head');
    c.socket.destroy();
    await waitFor(async () => (await failures('aborted')) === before.aborted! + 1, 'the upload to be counted as aborted');
    assert.equal(await failures('validation'), before.validation);
    assert.deepEqual(errorLines(), []);
  });

  it('logs refusals it chose (draining) at warn, without a stack trace', async () => {
    const d = await startTestServer({ logLevel: 'info' }, {
      engine,
      logStream: {
        write(line: string) {
          logs.push(JSON.parse(line) as LogLine);
        },
      },
    });
    try {
      d.app.attune.lifecycle.startDrain();
      const r = await postJson(`${d.url}/v1/completions`, { prompt: 'x', max_tokens: 1 });
      assert.equal(r.status, 503);
      const line = logs.find((l) => l.msg === 'the server is shutting down');
      assert.ok(line, 'the refusal is logged');
      assert.equal(line.level, 40);
      assert.equal(line.err, undefined, 'no stack trace for an expected refusal');
    } finally {
      await d.app.close();
    }
    assert.deepEqual(errorLines(), []);
  });

  it('redacts query strings in logs', async () => {
    await fetch(`${s.url}/v1/models?api_key=sk-very-secret&x=1`);
    await fetch(`${s.url}/no/such/route?token=sk-other-secret`);
    const text = raw.join('');
    assert.ok(!text.includes('sk-very-secret') && !text.includes('sk-other-secret'), 'a secret in a query string reached the log');
    assert.ok(logs.some((l) => l.req?.url === '/v1/models?api_key=[redacted]&x=[redacted]'));
  });

  it('names a forbidden JSON key by its path, in the body and in vllm_xargs alike', async () => {
    const direct = await postJson(`${s.url}/v1/completions`, '{"prompt": "x", "calibration": {"__proto__": {"act": true}}}');
    assert.equal(direct.status, 400);
    assert.deepEqual([assertErrorShape(direct.body).param, assertErrorShape(direct.body).code], ['calibration.__proto__', 'forbidden_key']);
    const xargs = await postJson(`${s.url}/v1/completions`, { prompt: 'x', vllm_xargs: { calibration: '{"__proto__": {"act": true}}' } });
    assert.equal(xargs.status, 400);
    assert.deepEqual([assertErrorShape(xargs.body).param, assertErrorShape(xargs.body).code], ['vllm_xargs.calibration.__proto__', 'forbidden_key']);
    const ctor = await postJson(`${s.url}/v1/completions`, '{"prompt": "x", "user": {"constructor": {"prototype": {}}}}');
    assert.equal(ctor.status, 400);
    assert.equal(assertErrorShape(ctor.body).param, 'user.constructor');
  });

  it('answers a CORS preflight without a method in the error shape', async () => {
    const r = await fetch(`${s.url}/v1/completions`, { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    assert.equal(r.status, 400);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(assertErrorShape(await r.json()).code, 'invalid_preflight');
  });
});
