/**
 * Worker faults through the real HTTP server: the engine worker dies mid-generation (the crash drill,
 * an uncaught throw on the worker thread between steps, which is how any bug in engine code kills
 * it). Every in-flight request must fail cleanly with 503 and reason `internal` (a stream that is
 * already open ends with an SSE error event instead), /ready must say not-ready until the worker is
 * back, the worker must come back with a growing backoff, the process must never die, and afterwards
 * requests must give exactly the greedy tokens they gave before.
 *
 * The other fault is a step that throws while the worker lives on: the engine catches it and fails
 * only the rows of that step. No request the HTTP layer lets through reaches it on a consistent
 * server (the fuzz suite looks for one), so it is driven through a real inconsistency: an engine
 * compiled with ACT on layer 2 only, behind a server whose model profile says layers 2-4. A request
 * for heads on layer 3 passes validation and throws in the engine when its row inputs are written.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveModel } from '../../models/resolve.js';
import { actProfile } from '../../calibrators/act.js';
import { loadModelAssets } from '../../src/api/model-assets.js';
import { EngineClient, type EngineClientOptions } from '../../src/engine/engine-client.js';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import { modelsDir } from '../helpers/models-dir.js';
import type { ChatCompletion, Completion } from '../helpers/openai-types.js';
import { collectSse, postStream, readSse, type SseReader } from '../helpers/sse.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';
import { killWorkerAtStepBoundary } from '../helpers/worker-fault.js';

/** Generous: a loaded CI machine may take many seconds to reload a worker; nothing asserts speed. */
const BOUND_MS = 60_000;
/** As long as the context allows, so a request is still running when the worker is killed. */
const LONG = { prompt: [1], max_tokens: 511, temperature: 0, ignore_eos: true };
const GREEDY = { prompt: 'Once upon a time', max_tokens: 24, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true };
const GREEDY_CHAT = { messages: [{ role: 'user', content: 'Lily went to the park' }], max_tokens: 12, temperature: 0 };

async function startEngine(restart: EngineClientOptions['restart'], maxBatch: number, profile?: EngineClientOptions['profile']): Promise<EngineClient> {
  const model = await resolveModel('stories260K', { modelsDir, env: {}, download: false });
  return EngineClient.start({ model, engine: { maxBatch }, restart, ...(profile ? { profile } : {}) });
}

/** The greedy answer to a plain completion (as token ids), a calibrated one, and a streamed chat. */
async function greedyAnswers(url: string): Promise<{ plain: string[]; calibrated: string[]; chat: string }> {
  const plain = await postJson<Completion>(`${url}/v1/completions`, GREEDY);
  const calibrated = await postJson<Completion>(`${url}/v1/completions`, { ...GREEDY, calibration: { act: true } });
  assert.equal(plain.status, 200);
  assert.equal(calibrated.status, 200);
  const res = await postStream(`${url}/v1/chat/completions`, { ...GREEDY_CHAT, stream: true });
  assert.equal(res.status, 200);
  const { chunks, done } = await collectSse<ChatCompletion>(res);
  assert.ok(done);
  return {
    plain: plain.body.choices[0]!.logprobs!.tokens,
    calibrated: calibrated.body.choices[0]!.logprobs!.tokens,
    chat: chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''),
  };
}

async function internalFailures(url: string): Promise<number> {
  return metricValue(await scrape(url), 'attune:request_failure_total', { reason: 'internal' }) ?? 0;
}

/** Opens a stream and waits for its first event, so the request is known to be running in the engine. */
async function openStream(url: string, path: string, body: Record<string, unknown>): Promise<SseReader> {
  const res = await postStream(`${url}${path}`, { ...body, stream: true });
  assert.equal(res.status, 200);
  const reader = readSse(res);
  const first = await reader.events.next();
  assert.ok(!first.done, 'the stream ended before its first event');
  return reader;
}

/** The rest of a stream that the crash cut: an error event (OpenAI shape, engine_error), no [DONE], then the end. */
async function assertCutStream(reader: SseReader): Promise<void> {
  const rest: string[] = [];
  for await (const e of reader.events) rest.push(e.data);
  assert.ok(!rest.includes('[DONE]'), 'a failed stream must not end with [DONE]');
  assert.ok(rest.length > 0, 'the stream ended without an error event');
  const e = assertErrorShape(JSON.parse(rest[rest.length - 1]!));
  assert.equal(e.code, 'engine_error');
  assert.equal(e.type, 'server_error');
  assert.match(e.message, /engine/);
}

function assertEngineFailure(r: { status: number; headers: Headers; body: unknown }): void {
  assert.equal(r.status, 503, JSON.stringify(r.body));
  assert.ok(r.headers.get('retry-after'), 'a 503 carries Retry-After');
  const e = assertErrorShape(r.body);
  assert.equal(e.code, 'engine_error');
  assert.match(e.message, /engine worker crashed/);
}

describe('worker faults', () => {
  const stray: unknown[] = [];
  const onStray = (e: unknown) => stray.push(e);
  before(() => {
    process.on('unhandledRejection', onStray);
    process.on('uncaughtException', onStray);
  });
  after(() => {
    process.off('unhandledRejection', onStray);
    process.off('uncaughtException', onStray);
  });

  describe('a crash mid-generation', () => {
    let engine: EngineClient;
    let s: TestServer;
    before(async () => {
      // A long first delay: /ready is checked while the worker is certainly still down.
      engine = await startEngine({ initialMs: 1_000, maxMs: 4_000, stableMs: 60_000 }, 2);
      s = await startTestServer({ engine: { maxBatch: 2 }, readyCacheSeconds: 0, queue: { retryAfterSeconds: 2 } }, { engine });
    });
    after(async () => {
      await s.close();
      await engine.close();
    });

    it('fails every in-flight request with 503 / an SSE error, reports not-ready until the worker is back, then serves the same tokens', async () => {
      const baseline = await greedyAnswers(s.url);
      const failuresBefore = await internalFailures(s.url);
      const generationBefore = engine.generation;

      // Running: a calibrated stream (already open) and the first sequence of a non-streaming n=3
      // request. Queued in the engine: that request's other two sequences and a chat stream that has
      // not opened yet (it opens at its first event, so it fails with a real 503 status instead).
      const running = await openStream(s.url, '/v1/completions', { ...LONG, calibration: { act: true } });
      const json = postJson(`${s.url}/v1/completions`, { ...LONG, n: 3 });
      await waitFor(() => engine.inFlight === 4, 'the n=3 request to reach the engine', BOUND_MS);
      const queuedStream = postStream(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Lily' }], max_tokens: 8, stream: true });
      await waitFor(() => engine.inFlight === 5, 'the chat stream to reach the engine', BOUND_MS);

      const down = once(engine, 'down');
      const restarting = once(engine, 'restarting');
      killWorkerAtStepBoundary(engine);
      await down;
      const [delayMs] = (await restarting) as [number];
      assert.equal(delayMs, 1_000, 'the first restart waits the initial backoff');

      // Down: not ready, new work refused at the door with 503 + Retry-After, liveness still fine.
      const ready = await getJson(`${s.url}/ready`);
      assert.equal(ready.status, 503);
      assert.match(assertErrorShape(ready.body).message, /not ready/);
      const refused = await postJson(`${s.url}/v1/completions`, { prompt: 'Once', max_tokens: 2 });
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('retry-after'), '2');
      assert.equal(assertErrorShape(refused.body).code, 'unavailable');
      assert.equal((await getJson(`${s.url}/health`)).status, 200);

      await assertCutStream(running);
      assertEngineFailure(await json);
      const q = await queuedStream;
      assertEngineFailure({ status: q.status, headers: q.headers, body: await q.json() });

      // The three requests that were in flight count as internal failures; the refusal at the door does not.
      assert.equal(await internalFailures(s.url), failuresBefore + 3);
      assert.equal(engine.stats.slotsInUse, 0);
      await waitFor(() => s.app.attune.admission.admitted === 0 && s.app.attune.lifecycle.activeGenerations === 0, 'admission to be released', BOUND_MS);

      // Not ready until the new worker is up (checked above, right after the crash); every answer
      // until then is a 503, and then it is ready again without anyone's help.
      for (;;) {
        const r = await fetch(`${s.url}/ready`);
        await r.arrayBuffer();
        if (r.status === 200) break;
        assert.equal(r.status, 503);
        await sleep(20);
      }
      assert.equal(engine.generation, generationBefore + 1, 'exactly one restart');

      assert.deepEqual(await greedyAnswers(s.url), baseline, 'the restarted worker gives the same greedy tokens');
      const metrics = await scrape(s.url);
      assert.equal(metricValue(metrics, 'attune:kv_cache_usage_perc'), 0);
      assert.deepEqual(stray, []);
    });
  });

  describe('repeated crashes', () => {
    const STABLE_MS = 1_500;
    let engine: EngineClient;
    let s: TestServer;
    before(async () => {
      engine = await startEngine({ initialMs: 100, maxMs: 800, stableMs: STABLE_MS }, 2);
      s = await startTestServer({ engine: { maxBatch: 2 }, readyCacheSeconds: 0 }, { engine });
    });
    after(async () => {
      await s.close();
      await engine.close();
    });

    it('back off (the restart delay doubles up to its cap), never take the process down, and reset once the worker stays up', async () => {
      const baseline = await greedyAnswers(s.url);
      const failuresBefore = await internalFailures(s.url);
      const delays: number[] = [];
      const onRestarting = (d: number) => delays.push(d);
      engine.on('restarting', onRestarting);
      try {
        const crashes = 5;
        for (let i = 0; i < crashes; i++) {
          const stream = await openStream(s.url, '/v1/completions', LONG);
          const downAt = once(engine, 'down').then(() => performance.now());
          const readyAt = once(engine, 'ready').then(() => performance.now());
          killWorkerAtStepBoundary(engine);
          await assertCutStream(stream);
          const gap = (await readyAt) - (await downAt);
          // Only a lower bound: the restart cannot come before its delay (timers may fire ~1 ms early).
          assert.ok(gap >= delays[i]! - 2, `crash ${i + 1}: back after ${gap.toFixed(0)} ms, before its ${delays[i]} ms backoff`);
          assert.equal((await getJson(`${s.url}/health`)).status, 200);
          await waitFor(async () => (await fetch(`${s.url}/ready`)).status === 200, 'the worker to come back', BOUND_MS);
        }
        assert.deepEqual(delays, [100, 200, 400, 800, 800]);
        assert.equal(await internalFailures(s.url), failuresBefore + crashes);

        // A worker that stays up earns the short delay back.
        await sleep(STABLE_MS * 2);
        const down = once(engine, 'down');
        killWorkerAtStepBoundary(engine);
        await down;
        assert.equal(delays[delays.length - 1], 100);
        await waitFor(async () => (await fetch(`${s.url}/ready`)).status === 200, 'the worker to come back', BOUND_MS);
      } finally {
        engine.off('restarting', onRestarting);
      }
      assert.deepEqual(await greedyAnswers(s.url), baseline);
      assert.equal(engine.stats.slotsInUse, 0);
      assert.equal(s.app.attune.admission.admitted, 0);
      assert.deepEqual(stray, []);
    });
  });
  describe('a step that throws', () => {
    let engine: EngineClient;
    let s: TestServer;
    before(async () => {
      const model = await resolveModel('stories260K', { modelsDir, env: {}, download: false });
      const { profile } = await loadModelAssets(model);
      assert.deepEqual(actProfile(profile)?.layers, [2, 3, 4], 'the server side believes layers 2-4 are calibratable');
      engine = await startEngine({ initialMs: 100 }, 1, { ...profile, act: { ...actProfile(profile)!, layers: [2], heads: { 2: [6] } } });
      // A short keep-alive opens a queued stream before its first step, so its failure must travel as an SSE event.
      s = await startTestServer({ engine: { maxBatch: 1 }, readyCacheSeconds: 0, sseKeepAliveSeconds: 0.02 }, { engine });
    });
    after(async () => {
      await s.close();
      await engine.close();
    });

    it('fails only the requests of that step with 503 / an SSE error; the worker stays up and serves the rest', async () => {
      const baseline = await postJson<Completion>(`${s.url}/v1/completions`, GREEDY);
      const longAlone = await postJson<Completion>(`${s.url}/v1/completions`, LONG);
      assert.equal(longAlone.status, 200);
      const failuresBefore = await internalFailures(s.url);
      const generation = engine.generation;
      const poison = { prompt: 'Once upon a time', max_tokens: 8, temperature: 0, calibration: { act: { heads: { 3: [0] } } } };

      const alone = await postJson(`${s.url}/v1/completions`, poison);
      assert.equal(alone.status, 503, JSON.stringify(alone.body));
      assert.ok(alone.headers.get('retry-after'));
      const e = assertErrorShape(alone.body);
      assert.equal(e.code, 'engine_error');
      assert.match(e.message, /the engine failed while running this request/);

      // A plain stream holds the only slot; the poisoned stream queues behind it, opens on its
      // keep-alive, and fails at its own first step. The plain stream is not touched.
      const holder = await postStream(`${s.url}/v1/completions`, { ...LONG, stream: true });
      assert.equal(holder.status, 200);
      const holderReader = readSse(holder);
      assert.ok(!(await holderReader.events.next()).done);
      const queued = await postStream(`${s.url}/v1/completions`, { ...poison, stream: true });
      assert.equal(queued.status, 200, 'the queued stream opened on its keep-alive');
      await assertCutStream(readSse(queued));
      const rest: string[] = [];
      for await (const ev of holderReader.events) rest.push(ev.data);
      assert.equal(rest.pop(), '[DONE]', 'the request sharing the worker finished normally');
      const holderText = rest.map((d) => (JSON.parse(d) as Completion).choices[0]?.text ?? '').join('');
      assert.ok(longAlone.body.choices[0]!.text.endsWith(holderText) && holderText.length > 0, 'with the same tokens as alone');

      assert.equal(engine.generation, generation, 'the worker did not restart');
      assert.equal((await fetch(`${s.url}/ready`)).status, 200);
      assert.equal(await internalFailures(s.url), failuresBefore + 2);
      await waitFor(() => engine.stats.slotsInUse === 0 && s.app.attune.admission.admitted === 0, 'the slot to be freed', BOUND_MS);

      const again = await postJson<Completion>(`${s.url}/v1/completions`, GREEDY);
      assert.deepEqual(again.body.choices[0]!.logprobs!.tokens, baseline.body.choices[0]!.logprobs!.tokens);
      const calibrated = await postJson<Completion>(`${s.url}/v1/completions`, { ...GREEDY, calibration: { act: { heads: { 2: [0, 6] } } } });
      assert.equal(calibrated.status, 200, 'a calibration the engine does have still works');
      assert.deepEqual(stray, []);
    });
  });
});
