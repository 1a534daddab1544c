/**
 * An engine failure in mid-stream: the worker dies while a stream is open. The client gets an
 * SSE error event and the stream closes; a non-streaming request gets 503; the process stays up,
 * /ready reports not-ready until the worker is back, and requests then succeed again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { Completion } from '../helpers/openai-types.js';
import { postStream, readSse } from '../helpers/sse.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';
import { killWorkerAtStepBoundary } from '../helpers/worker-fault.js';

describe('engine faults', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ readyCacheSeconds: 0 });
  });
  after(async () => {
    await s.close();
  });

  it('turns a worker crash mid-stream into an error event, then recovers', async () => {
    const res = await postStream(`${s.url}/v1/completions`, { prompt: [1], max_tokens: 500, ignore_eos: true, temperature: 0, stream: true });
    assert.equal(res.status, 200);
    const reader = readSse(res);
    await reader.events.next();
    const pending = postJson(`${s.url}/v1/completions`, { prompt: [1], max_tokens: 500, ignore_eos: true });
    await waitFor(() => s.engine.inFlight === 2, 'both requests to reach the engine');
    killWorkerAtStepBoundary(s.engine);

    const rest: string[] = [];
    for await (const e of reader.events) rest.push(e.data);
    assert.ok(!rest.includes('[DONE]'), 'no [DONE] after a failure');
    const last = JSON.parse(rest[rest.length - 1]!) as unknown;
    const e = assertErrorShape(last);
    assert.equal(e.code, 'engine_error');

    const r = await pending;
    assert.equal(r.status, 503);
    assert.ok(r.headers.get('retry-after'));
    assert.equal(assertErrorShape(r.body).code, 'engine_error');

    assert.equal((await getJson(`${s.url}/health`)).status, 200, 'the process is still up');
    await waitFor(async () => (await getJson(`${s.url}/ready`)).status === 200, 'the worker to come back');
    const ok = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 3, temperature: 0 });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.choices[0]!.text, ', there was');
    assert.equal(metricValue(await scrape(s.url), 'attune:request_failure_total', { reason: 'internal' }), 2);
    assert.equal(s.app.attune.admission.admitted, 0);
  });
});
