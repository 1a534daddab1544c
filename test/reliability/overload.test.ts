/**
 * Overload: a server with a small, known capacity (2 batch slots + 4 queued sequences, at most 48
 * queued prompt tokens) flooded by 64 concurrent clients, more than 10x what it may admit. Each
 * bound must hold on its own, refusing with 429 + Retry-After and naming itself: short prompts fill
 * the request bound first, 30-token prompts the token bound. Nothing may fail with a 5xx, every
 * admitted request must complete with exactly the greedy tokens it gives alone, and an admitted
 * request's wait must stay bounded by what the queue allows.
 *
 * The wait is counted in the engine, not timed (tests do not assert wall-clock time): how many other
 * requests finished between a request's submission to the engine and its own finish, seen through
 * the real engine client's events. Every request here asks for the same number of tokens, so an
 * admitted request is overtaken only by the at most `admittable - 1` sequences admitted before it and
 * by the other rows of its last batch finishing in the same step: `(admittable - 1) + (slots - 1)`. An unbounded
 * queue would admit all 64 clients and let the last of them be overtaken 63 times. The latencies in
 * milliseconds are printed beside the counts, for the reader.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { EngineEvent } from '../../src/engine/types.js';
import type { Completion } from '../helpers/openai-types.js';
import { Prng } from '../helpers/prng.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

const SLOTS = 2;
const MAX_QUEUED_REQUESTS = 4;
const MAX_QUEUED_TOKENS = 48;
const CAPACITY = SLOTS + MAX_QUEUED_REQUESTS;
const CLIENTS = 64;
const MAX_TOKENS = 48;

interface Flood {
  latenciesMs: number[];
  /** Per admitted request: how many other requests finished in the engine while it was there. */
  overtaken: number[];
  statuses: Map<number, number>;
  refusals: string[];
  problems: string[];
  peakAdmitted: number;
  peakQueuedTokens: number;
  peakRunning: number;
}

function nearestRank(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

describe('overload', () => {
  let s: TestServer;
  /** Every 429 this file saw, measurement retries included, for the cross-check with /metrics. */
  let refused = 0;
  before(async () => {
    s = await startTestServer({
      engine: { maxBatch: SLOTS },
      queue: { maxQueuedRequests: MAX_QUEUED_REQUESTS, maxQueuedTokens: MAX_QUEUED_TOKENS, retryAfterSeconds: 1 },
    });
  });
  after(async () => {
    await s.close();
  });

  /**
   * Until the returned function is called: for each request submitted to the engine, how many other
   * requests finished between its submission and its own finish, pushed to `into` as it finishes.
   */
  function countOvertaking(into: number[]): () => void {
    const finishedAtSubmit = new Map<string, number>();
    let finished = 0;
    const generate = s.engine.generate.bind(s.engine);
    s.engine.generate = (req, signal) => {
      finishedAtSubmit.set(req.id, finished);
      return generate(req, signal);
    };
    const onEvent = (e: EngineEvent) => {
      if (e.type !== 'finish' && e.type !== 'error') return;
      const at = finishedAtSubmit.get(e.id);
      if (at !== undefined) into.push(finished - at);
      finishedAtSubmit.delete(e.id);
      finished++;
    };
    s.engine.on('event', onEvent);
    return () => {
      s.engine.off('event', onEvent);
      Reflect.deleteProperty(s.engine, 'generate'); // the prototype's method again
    };
  }

  /** One greedy request, timed from send to the last byte. */
  async function timed(body: Record<string, unknown>): Promise<{ ms: number; status: number; headers: Headers; body: unknown }> {
    const t0 = performance.now();
    const r = await postJson(`${s.url}/v1/completions`, body);
    if (r.status === 429) refused++;
    return { ms: performance.now() - t0, ...r };
  }

  /**
   * CLIENTS concurrent clients send `body` until `target` requests were admitted and answered; a
   * refused client tries again after 50-150 ms (impatient, so the pressure stays on).
   */
  async function flood(body: Record<string, unknown>, expectedText: string, target: number, seed: number): Promise<Flood> {
    const f: Flood = { latenciesMs: [], overtaken: [], statuses: new Map(), refusals: [], problems: [], peakAdmitted: 0, peakQueuedTokens: 0, peakRunning: 0 };
    const { admission } = s.app.attune;
    // The bounds are checked on the server's own state, sampled while the flood runs.
    const watch = setInterval(() => {
      f.peakAdmitted = Math.max(f.peakAdmitted, admission.admitted);
      f.peakQueuedTokens = Math.max(f.peakQueuedTokens, admission.queuedTokens);
      f.peakRunning = Math.max(f.peakRunning, s.engine.stats.running);
    }, 2);
    const stopCounting = countOvertaking(f.overtaken);
    const rng = new Prng(seed);
    let answered = 0;
    const client = async () => {
      while (answered < target) {
        const r = await timed(body);
        f.statuses.set(r.status, (f.statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) {
          answered++;
          f.latenciesMs.push(r.ms);
          const c = (r.body as Completion).choices[0]!;
          if (c.text !== expectedText || c.finish_reason !== 'length' || (r.body as Completion).usage!.completion_tokens !== MAX_TOKENS) {
            f.problems.push(`an admitted request answered differently: ${JSON.stringify(r.body).slice(0, 200)}`);
          }
        } else if (r.status === 429) {
          const e = assertErrorShape(r.body);
          if (e.code !== 'overloaded' || e.type !== 'rate_limit_error') f.problems.push(`429 with ${e.type}/${e.code}`);
          if (r.headers.get('retry-after') !== '1') f.problems.push(`429 with Retry-After ${r.headers.get('retry-after')}`);
          f.refusals.push(e.message);
          await sleep(rng.int(50, 150));
        } else f.problems.push(`status ${r.status}: ${JSON.stringify(r.body).slice(0, 200)}`);
      }
    };
    try {
      await Promise.all(Array.from({ length: CLIENTS }, client));
    } finally {
      clearInterval(watch);
      stopCounting();
    }
    return f;
  }

  /** `admittable`: sequences the binding bound lets in at once (slots + what may queue). */
  function checkFlood(name: string, f: Flood, admittable: number, bound: RegExp): void {
    const sorted = [...f.latenciesMs].sort((a, b) => a - b);
    const mostOvertaken = Math.max(...f.overtaken);
    const overtakenBound = admittable - 1 + (SLOTS - 1);
    console.log(
      `overload ${name}: ${[...f.statuses].map(([k, v]) => `${k}:${v}`).join(' ')}; an admitted request was overtaken at most ${mostOvertaken} times ` +
        `(bound ${overtakenBound}); admitted latency p50 ${nearestRank(sorted, 0.5).toFixed(0)} ms, p99 ${nearestRank(sorted, 0.99).toFixed(0)} ms; ` +
        `peak admitted ${f.peakAdmitted}, queued tokens ${f.peakQueuedTokens}, running ${f.peakRunning}`,
    );
    assert.deepEqual(f.problems, []);
    assert.deepEqual([...f.statuses.keys()].sort(), [200, 429], 'only 200 and 429: no 5xx, no 503');
    assert.ok(f.refusals.length >= CLIENTS, `the flood was refused ${f.refusals.length} times; expected at least one refusal per client`);
    for (const m of f.refusals) assert.match(m, bound);
    assert.ok(f.peakAdmitted <= admittable, `admitted ${f.peakAdmitted} sequences, more than the ${admittable} the bounds allow`);
    assert.ok(f.peakRunning <= SLOTS);
    assert.ok(f.peakQueuedTokens <= MAX_QUEUED_TOKENS, `queued ${f.peakQueuedTokens} prompt tokens, more than ${MAX_QUEUED_TOKENS}`);
    assert.ok(mostOvertaken <= overtakenBound, `an admitted request was overtaken ${mostOvertaken} times, more than ${overtakenBound}`);
  }

  it(`refuses ${CLIENTS} concurrent clients beyond ${CAPACITY} admitted sequences and ${MAX_QUEUED_TOKENS} queued tokens, with a bounded wait`, { timeout: 10 * 60_000 }, async () => {
    const short = { prompt: [1, 403], max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true };
    const tok = await postJson<{ tokens: number[] }>(`${s.url}/tokenize`, {
      prompt: 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends every day.',
    });
    assert.ok(tok.body.tokens.length >= 30);
    const longPrompt = { ...short, prompt: tok.body.tokens.slice(0, 30) };
    // 30-token prompts: the second queued one would make 60 > 48 tokens, long before 4 are queued.
    assert.ok(2 * longPrompt.prompt.length > MAX_QUEUED_TOKENS && MAX_QUEUED_REQUESTS * short.prompt.length < MAX_QUEUED_TOKENS);

    const shortText = ((await timed(short)).body as Completion).choices[0]!.text;
    const longText = ((await timed(longPrompt)).body as Completion).choices[0]!.text;
    const byRequests = await flood(short, shortText, 80, 1);
    const byTokens = await flood(longPrompt, longText, 40, 2);

    checkFlood('request bound', byRequests, CAPACITY, /max_queued_requests/);
    // One 30-token prompt fits the token bound's queue, a second would not.
    const byTokenBound = SLOTS + Math.floor(MAX_QUEUED_TOKENS / longPrompt.prompt.length);
    checkFlood('token bound', byTokens, byTokenBound, /max_queued_tokens/);

    await waitFor(() => s.engine.stats.slotsInUse === 0 && s.app.attune.admission.admitted === 0 && s.app.attune.admission.queuedTokens === 0, 'the server to drain', 60_000);
    const metrics = await scrape(s.url);
    assert.equal(metricValue(metrics, 'attune:request_failure_total', { reason: 'overloaded' }), refused);
    assert.ok(refused >= byRequests.refusals.length + byTokens.refusals.length);
    assert.equal(metricValue(metrics, 'attune:request_failure_total', { reason: 'internal' }), 0);
  });
});
