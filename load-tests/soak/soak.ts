/**
 * The soak: a bounded-time run of the workload (workload.ts) against an in-process server, checked
 * at the end for what a long-running server must not do:
 *
 *  - answer anything malformed: every request ends in a well-formed 200 (JSON body or SSE stream
 *    ending in [DONE]), a 4xx in OpenAI's error shape for the invalid ones (or 429 at the door), or a
 *    disconnect the client made itself;
 *  - disagree with its own counters: /metrics failures by reason must match what the clients saw
 *    (validation = 4xx, overloaded = 429, aborted <= client disconnects, no internal or timeout), and
 *    the finished-sequence counter must lie between the completed choices and those plus the choices
 *    of disconnected requests;
 *  - drift: the canaries (greedy and seeded requests, asked again and again among the rest) give
 *    the same text every time;
 *  - leak: KV slots in use, admission and in-flight generations return to 0, and the heap and RSS
 *    after the warm-up stay within bounds (RSS sampled after full GCs of the main thread, so the
 *    figure follows what is live rather than when V8 last collected).
 *
 * Used by `npm run soak` (run.ts) and by test/reliability/soak.test.ts.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import type { FastifyInstance } from 'fastify';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { metricValue } from '../../test/helpers/metrics-text.js';
import { errorShapeProblem, parseSseBody } from '../../test/helpers/response-check.js';
import { Workload, type PlannedRequest } from './workload.js';

export interface SoakTarget {
  url: string;
  engine: EngineClient;
  app: FastifyInstance;
}

export interface SoakOptions {
  durationMs: number;
  concurrency: number;
  seed: number;
  /**
   * The warm-up, excluded from the memory baseline while JIT, caches, allocator arenas and V8's heap
   * sizing settle: at least this fraction of the run (default 0.2) and this many requests (default
   * 2,000, since settling follows the work done, not the clock), but never more than half the run.
   */
  warmupFraction?: number;
  warmupRequests?: number;
  sampleEveryMs?: number;
  /** RSS may grow this much from the warm-up window to the end window. */
  rssBoundMb?: number;
  /** The heap after a full GC may grow this much from the end of the warm-up to the end. */
  heapBoundMb?: number;
  /** Progress lines; none by default. */
  log?: (line: string) => void;
  /** What to send; default the stories260K mix of workload.ts (seeded with `seed`). */
  workload?: { next(): PlannedRequest };
}

export interface SoakReport {
  seed: number;
  durationMs: number;
  concurrency: number;
  requests: number;
  completed: number;
  /** Choices in completed responses. */
  completedChoices: number;
  /** Choices of requests the client disconnected. */
  abortedChoices: number;
  rejected: number;
  overloaded: number;
  clientAborts: number;
  streams: number;
  calibrated: number;
  /** Requests by client behaviour other than normal. */
  slowClients: { slowBody: number; slowReader: number; nonReader: number };
  /** /metrics deltas over the run (cutForNotReading: connections closed by the write timeout). */
  metrics: { success: number; validation: number; overloaded: number; aborted: number; timeout: number; internal: number; cutForNotReading: number };
  /** Slots, admission and in-flight generations at the end, once the server had gone idle (all must be 0). */
  leaks: { slotsInUse: number; kvCacheUsage: number; admitted: number; queuedTokens: number; activeGenerations: number; engineInFlight: number };
  memory: {
    gcExposed: boolean;
    samples: number;
    /** When the warm-up ended, and after how many requests. */
    warmupMs: number;
    warmupRequests: number;
    rssWarmMb: number;
    rssEndMb: number;
    rssGrowthMb: number;
    rssPeakMb: number;
    heapWarmMb: number;
    heapEndMb: number;
    heapGrowthMb: number;
    rssBoundMb: number;
    heapBoundMb: number;
    /** Median RSS in each tenth of the run, for the shape of the curve. */
    rssTenthsMb: number[];
  };
  /** Everything that went wrong, one line each (empty on a clean run). */
  violations: string[];
}

const MB = 1024 * 1024;

/** A full GC, when it can be had: `--expose-gc`, else switched on at run time. */
function gcFunction(): (() => void) | null {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    setFlagsFromString('--expose-gc');
    const fromContext = runInNewContext('gc') as unknown;
    return typeof fromContext === 'function' ? (fromContext as () => void) : null;
  } catch {
    return null;
  }
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function scrapeCounters(url: string): Promise<SoakReport['metrics'] & { kv: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const failure = (reason: string) => metricValue(text, 'attune:request_failure_total', { reason }) ?? 0;
  return {
    success: (metricValue(text, 'attune:request_success_total', { finished_reason: 'stop' }) ?? 0) + (metricValue(text, 'attune:request_success_total', { finished_reason: 'length' }) ?? 0),
    validation: failure('validation'),
    overloaded: failure('overloaded'),
    aborted: failure('aborted'),
    timeout: failure('timeout'),
    internal: failure('internal'),
    cutForNotReading: metricValue(text, 'attune:http_connections_closed_total', { reason: 'write_timeout' }) ?? 0,
    kv: metricValue(text, 'attune:kv_cache_usage_perc') ?? NaN,
  };
}

type Outcome =
  | { type: 'completed'; texts: string[] }
  | { type: 'rejected'; status: number }
  | { type: 'aborted' }
  | { type: 'broken'; why: string };

/** Checks a non-streaming body; returns the choice texts by index, or why it is malformed. */
function checkJson(plan: PlannedRequest, body: unknown): string[] | string {
  const chat = plan.path === '/v1/chat/completions';
  const b = body as { object?: unknown; choices?: unknown; usage?: { prompt_tokens?: unknown; completion_tokens?: unknown; total_tokens?: unknown }; calibration?: unknown };
  if (b.object !== (chat ? 'chat.completion' : 'text_completion')) return `object is ${String(b.object)}`;
  if (!Array.isArray(b.choices) || b.choices.length !== plan.choices) return `expected ${plan.choices} choices`;
  const texts = new Array<string>(plan.choices);
  for (const c of b.choices as { index?: unknown; text?: unknown; message?: { role?: unknown; content?: unknown }; finish_reason?: unknown }[]) {
    if (typeof c.index !== 'number' || c.index < 0 || c.index >= plan.choices || texts[c.index] !== undefined) return `bad choice index ${String(c.index)}`;
    if (c.finish_reason !== 'stop' && c.finish_reason !== 'length') return `finish_reason ${String(c.finish_reason)}`;
    const text = chat ? c.message?.content : c.text;
    if (chat && c.message?.role !== 'assistant') return 'message.role is not assistant';
    if (typeof text !== 'string') return 'choice text is not a string';
    texts[c.index] = text;
  }
  const u = b.usage;
  if (!u || typeof u.completion_tokens !== 'number' || typeof u.prompt_tokens !== 'number' || u.total_tokens !== u.prompt_tokens + u.completion_tokens) return 'usage is malformed';
  if (u.completion_tokens > plan.choices * plan.maxTokens) return `usage.completion_tokens ${u.completion_tokens} exceeds ${plan.choices} x max_tokens ${plan.maxTokens}`;
  if (plan.calibrationRequested !== (typeof b.calibration === 'object' && b.calibration !== null)) return 'calibration object present iff requested';
  return texts;
}

/** Checks a complete SSE body; returns the choice texts by index, or why it is malformed. */
function checkStream(plan: PlannedRequest, text: string): string[] | string {
  const chat = plan.path === '/v1/chat/completions';
  const sse = parseSseBody(text);
  if (sse.problems.length) return sse.problems.join('; ');
  if (sse.error) return `stream failed: ${sse.error.code}: ${sse.error.message}`;
  const texts = Array.from({ length: plan.choices }, () => '');
  const finished = new Array<boolean>(plan.choices).fill(false);
  let usage = false;
  for (const raw of sse.chunks) {
    const chunk = raw as { object?: unknown; choices?: { index: number; text?: string; delta?: { content?: string }; finish_reason?: unknown }[]; usage?: unknown };
    if (chunk.object !== (chat ? 'chat.completion.chunk' : 'text_completion')) return `chunk object is ${String(chunk.object)}`;
    if (!Array.isArray(chunk.choices)) return 'chunk without choices';
    if (chunk.choices.length === 0) {
      usage = typeof chunk.usage === 'object' && chunk.usage !== null;
      continue;
    }
    for (const c of chunk.choices) {
      if (c.index < 0 || c.index >= plan.choices) return `chunk index ${c.index}`;
      if (finished[c.index]) return `choice ${c.index} continues after its finish_reason`;
      texts[c.index] += (chat ? c.delta?.content : c.text) ?? '';
      if (c.finish_reason !== null && c.finish_reason !== undefined) {
        if (c.finish_reason !== 'stop' && c.finish_reason !== 'length') return `finish_reason ${String(c.finish_reason)}`;
        finished[c.index] = true;
      }
    }
  }
  if (!finished.every(Boolean)) return 'a choice never finished';
  if (plan.includeUsage && !usage) return 'include_usage but no usage chunk';
  return texts;
}

async function execute(url: string, plan: PlannedRequest): Promise<Outcome> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  if (plan.abort && 'afterMs' in plan.abort) timer = setTimeout(() => controller.abort(), plan.abort.afterMs);
  try {
    const payload = typeof plan.body === 'string' ? plan.body : JSON.stringify(plan.body);
    const res = await fetch(`${url}${plan.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      ...(plan.client.kind === 'slow-body' ? { body: slowBody(payload, plan.client.pieces, plan.client.gapMs), duplex: 'half' } : { body: payload }),
      signal: controller.signal,
    } as RequestInit);
    if (plan.client.kind === 'non-reader' && res.status === 200) {
      // Reads nothing: the server must cut the stream (write timeout), free its slots and its memory.
      await new Promise((r) => setTimeout(r, (plan.client as { holdMs: number }).holdMs));
      controller.abort();
      return { type: 'aborted' };
    }
    if (res.status !== 200) {
      const text = await res.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return { type: 'broken', why: `status ${res.status} with a body that is not JSON` };
      }
      const shape = errorShapeProblem(body);
      if (shape) return { type: 'broken', why: `status ${res.status}: ${shape}` };
      if (res.status >= 500) return { type: 'broken', why: `status ${res.status}: ${text.slice(0, 200)}` };
      if (res.status === 429 && !res.headers.get('retry-after')) return { type: 'broken', why: '429 without Retry-After' };
      return { type: 'rejected', status: res.status };
    }
    if (plan.invalid) return { type: 'broken', why: `an invalid request was accepted: ${JSON.stringify(plan.body).slice(0, 120)}` };
    if (!plan.stream) {
      const checked = checkJson(plan, await res.json());
      return typeof checked === 'string' ? { type: 'broken', why: checked } : { type: 'completed', texts: checked };
    }
    // Read the stream chunk by chunk, so a planned disconnect lands mid-stream.
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let events = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (plan.client.kind === 'slow-reader') await new Promise((r) => setTimeout(r, (plan.client as { pauseMs: number }).pauseMs));
      const piece = decoder.decode(value, { stream: true });
      text += piece;
      events += (piece.match(/\n\n/g) ?? []).length;
      if (plan.abort && 'afterEvents' in plan.abort && events >= plan.abort.afterEvents && !text.includes('data: [DONE]')) {
        controller.abort();
        await reader.cancel().catch(() => undefined);
        return { type: 'aborted' };
      }
    }
    const checked = checkStream(plan, text);
    return typeof checked === 'string' ? { type: 'broken', why: checked } : { type: 'completed', texts: checked };
  } catch (e) {
    if (controller.signal.aborted) return { type: 'aborted' };
    return { type: 'broken', why: `request failed: ${(e as Error).message}` };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** A request body that arrives in `pieces`, `gapMs` apart (chunked). */
function slowBody(text: string, pieces: number, gapMs: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  const size = Math.ceil(bytes.length / pieces);
  let at = 0;
  return new ReadableStream({
    async pull(controller) {
      if (at > 0) await new Promise((r) => setTimeout(r, gapMs));
      controller.enqueue(bytes.subarray(at, at + size));
      at += size;
      if (at >= bytes.length) controller.close();
    },
  });
}

async function waitUntil(check: () => boolean | Promise<boolean>, boundMs: number): Promise<boolean> {
  const give = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > give) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

export async function runSoak(target: SoakTarget, opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? (() => {});
  const gc = gcFunction();
  const warmupMs = opts.durationMs * (opts.warmupFraction ?? 0.2);
  const warmupRequests = opts.warmupRequests ?? 2_000;
  const sampleEveryMs = opts.sampleEveryMs ?? 500;
  const rssBoundMb = opts.rssBoundMb ?? 64;
  const heapBoundMb = opts.heapBoundMb ?? 8;
  const workload = opts.workload ?? new Workload(opts.seed);
  const violations: string[] = [];
  const violation = (line: string) => {
    // Bounded, so a broken server cannot make the report itself a memory leak.
    if (violations.length < 50) violations.push(line);
    else if (violations.length === 50) violations.push('... more violations not shown');
  };
  const determinism = new Map<string, string[]>();
  const report: SoakReport = {
    seed: opts.seed,
    durationMs: opts.durationMs,
    concurrency: opts.concurrency,
    requests: 0,
    completed: 0,
    completedChoices: 0,
    abortedChoices: 0,
    rejected: 0,
    overloaded: 0,
    clientAborts: 0,
    streams: 0,
    calibrated: 0,
    slowClients: { slowBody: 0, slowReader: 0, nonReader: 0 },
    metrics: { success: 0, validation: 0, overloaded: 0, aborted: 0, timeout: 0, internal: 0, cutForNotReading: 0 },
    leaks: { slotsInUse: 0, kvCacheUsage: 0, admitted: 0, queuedTokens: 0, activeGenerations: 0, engineInFlight: 0 },
    memory: { gcExposed: gc !== null, samples: 0, warmupMs: 0, warmupRequests: 0, rssWarmMb: 0, rssEndMb: 0, rssGrowthMb: 0, rssPeakMb: 0, heapWarmMb: 0, heapEndMb: 0, heapGrowthMb: 0, rssBoundMb, heapBoundMb, rssTenthsMb: [] },
    violations,
  };

  const before = await scrapeCounters(target.url);
  const started = performance.now();
  const deadline = started + opts.durationMs;
  const samples: { t: number; rss: number }[] = [];
  let heapWarm: number | null = null;
  let warmEnd = opts.durationMs / 2;
  const sampler = setInterval(() => {
    const t = performance.now() - started;
    // After a full GC the main thread's share of RSS is its live heap, not however much garbage the
    // last few hundred requests left; without it, RSS swings by tens of MB between samples.
    gc?.();
    samples.push({ t, rss: process.memoryUsage.rss() });
    if (heapWarm === null && ((t >= warmupMs && report.requests >= warmupRequests) || t >= opts.durationMs / 2)) {
      heapWarm = process.memoryUsage().heapUsed;
      warmEnd = t;
      report.memory.warmupRequests = report.requests;
    }
  }, sampleEveryMs);
  const progress = setInterval(() => {
    log(`soak: ${((performance.now() - started) / 1000).toFixed(0)} s, ${report.requests} requests, ${report.completed} completed, ${report.clientAborts} aborted, ${report.rejected} rejected, rss ${(process.memoryUsage.rss() / MB).toFixed(0)} MB`);
  }, 10_000);

  const lane = async () => {
    while (performance.now() < deadline) {
      const plan = workload.next();
      report.requests++;
      if (plan.stream) report.streams++;
      if (plan.calibrationRequested) report.calibrated++;
      if (plan.client.kind === 'slow-body') report.slowClients.slowBody++;
      else if (plan.client.kind === 'slow-reader') report.slowClients.slowReader++;
      else if (plan.client.kind === 'non-reader') report.slowClients.nonReader++;
      const outcome = await execute(target.url, plan);
      switch (outcome.type) {
        case 'completed': {
          report.completed++;
          report.completedChoices += plan.choices;
          if (plan.determinismKey) {
            const seen = determinism.get(plan.determinismKey);
            if (!seen) determinism.set(plan.determinismKey, outcome.texts);
            else if (JSON.stringify(seen) !== JSON.stringify(outcome.texts)) violation(`a deterministic request changed its answer: ${plan.determinismKey.slice(0, 160)}: ${JSON.stringify(seen).slice(0, 80)} vs ${JSON.stringify(outcome.texts).slice(0, 80)}`);
          }
          break;
        }
        case 'rejected':
          if (outcome.status === 429) report.overloaded++;
          else if (!plan.invalid) violation(`a valid request was refused with ${outcome.status}: ${JSON.stringify(plan.body).slice(0, 160)}`);
          else report.rejected++;
          break;
        case 'aborted':
          report.clientAborts++;
          report.abortedChoices += plan.choices;
          break;
        case 'broken':
          violation(`${plan.path} ${plan.stream ? 'stream' : 'json'}: ${outcome.why}`);
          break;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, lane));
  } finally {
    clearInterval(sampler);
    clearInterval(progress);
  }

  // Idle: every slot, ticket and generation must be given back (aborted rows are reaped at the next step).
  const { engine, app } = target;
  const idle = await waitUntil(
    () => engine.stats.slotsInUse === 0 && engine.inFlight === 0 && app.attune.admission.admitted === 0 && app.attune.lifecycle.activeGenerations === 0,
    60_000,
  );
  const after = await scrapeCounters(target.url);
  report.leaks = {
    slotsInUse: engine.stats.slotsInUse,
    kvCacheUsage: after.kv,
    admitted: app.attune.admission.admitted,
    queuedTokens: app.attune.admission.queuedTokens,
    activeGenerations: app.attune.lifecycle.activeGenerations,
    engineInFlight: engine.inFlight,
  };
  if (!idle || Object.values(report.leaks).some((v) => v !== 0)) violation(`leaked at the end: ${JSON.stringify(report.leaks)}`);

  const d = (k: keyof SoakReport['metrics']) => after[k] - before[k];
  report.metrics = { success: d('success'), validation: d('validation'), overloaded: d('overloaded'), aborted: d('aborted'), timeout: d('timeout'), internal: d('internal'), cutForNotReading: d('cutForNotReading') };
  const m = report.metrics;
  if (m.internal !== 0) violation(`request_failure_total{reason="internal"} rose by ${m.internal}`);
  if (m.timeout !== 0) violation(`request_failure_total{reason="timeout"} rose by ${m.timeout}`);
  if (m.validation !== report.rejected) violation(`request_failure_total{reason="validation"} rose by ${m.validation}, but clients saw ${report.rejected} refusals`);
  if (m.overloaded !== report.overloaded) violation(`request_failure_total{reason="overloaded"} rose by ${m.overloaded}, but clients saw ${report.overloaded} 429s`);
  // A disconnect that raced the last byte of a finished response is not an abort on the server's side.
  if (m.aborted > report.clientAborts) violation(`request_failure_total{reason="aborted"} rose by ${m.aborted}, more than the ${report.clientAborts} client disconnects`);
  if (m.success < report.completedChoices || m.success > report.completedChoices + report.abortedChoices) {
    violation(`request_success_total rose by ${m.success}, outside [${report.completedChoices}, ${report.completedChoices + report.abortedChoices}] (completed choices, plus those of disconnected requests)`);
  }

  // Memory: RSS is compared window to window under the same load (the median of the samples in the 10%
  // of the run after the warm-up vs the last 10%, each taken after a full GC); the heap after full
  // GCs at the end of the warm-up and once the server is idle.
  gc?.();
  const heapEnd = process.memoryUsage().heapUsed;
  const mem = report.memory;
  mem.warmupMs = warmEnd;
  const windowMs = Math.max(opts.durationMs * 0.1, sampleEveryMs * 3);
  const warmWindow = samples.filter((s) => s.t >= warmEnd && s.t < warmEnd + windowMs).map((s) => s.rss);
  const endWindow = samples.filter((s) => s.t >= opts.durationMs - windowMs).map((s) => s.rss);
  mem.samples = samples.length;
  mem.rssWarmMb = median(warmWindow) / MB;
  mem.rssEndMb = median(endWindow) / MB;
  mem.rssGrowthMb = mem.rssEndMb - mem.rssWarmMb;
  mem.rssPeakMb = Math.max(...samples.map((s) => s.rss)) / MB;
  mem.rssTenthsMb = Array.from({ length: 10 }, (_, k) => median(samples.filter((s) => s.t >= (k * opts.durationMs) / 10 && s.t < ((k + 1) * opts.durationMs) / 10).map((s) => s.rss)) / MB);
  mem.heapWarmMb = (heapWarm ?? NaN) / MB;
  mem.heapEndMb = heapEnd / MB;
  mem.heapGrowthMb = mem.heapEndMb - mem.heapWarmMb;
  if (!Number.isFinite(mem.rssGrowthMb) || !Number.isFinite(mem.heapGrowthMb)) violation('too few memory samples to judge growth');
  else {
    if (mem.rssGrowthMb > rssBoundMb) violation(`RSS grew ${mem.rssGrowthMb.toFixed(1)} MB after the warm-up (bound ${rssBoundMb} MB)`);
    if (mem.heapGrowthMb > heapBoundMb) violation(`the heap grew ${mem.heapGrowthMb.toFixed(1)} MB after the warm-up (bound ${heapBoundMb} MB)`);
  }
  if (report.completed === 0) violation('no request completed');
  if (report.clientAborts === 0) violation('no client disconnect happened; the run is too short to mean anything');
  report.durationMs = performance.now() - started;
  return report;
}

export function formatSoakReport(r: SoakReport): string {
  const m = r.memory;
  return [
    `soak seed=${r.seed}: ${(r.durationMs / 1000).toFixed(0)} s at concurrency ${r.concurrency}; ${r.requests} requests (${r.streams} streamed, ${r.calibrated} calibrated): ` +
      `${r.completed} completed, ${r.clientAborts} disconnected by the client, ${r.rejected} invalid refused, ${r.overloaded} overloaded`,
    `  slow clients: ${r.slowClients.slowBody} slow uploads, ${r.slowClients.slowReader} slow readers, ${r.slowClients.nonReader} non-readers (${r.metrics.cutForNotReading} responses cut by the write timeout)`,
    `  /metrics deltas: success ${r.metrics.success} sequences, failures validation ${r.metrics.validation}, overloaded ${r.metrics.overloaded}, aborted ${r.metrics.aborted}, timeout ${r.metrics.timeout}, internal ${r.metrics.internal}`,
    `  at the end: slots in use ${r.leaks.slotsInUse}, kv_cache_usage_perc ${r.leaks.kvCacheUsage}, admitted ${r.leaks.admitted}, queued tokens ${r.leaks.queuedTokens}, active generations ${r.leaks.activeGenerations}`,
    `  memory (after a warm-up of ${(m.warmupMs / 1000).toFixed(0)} s, ${m.warmupRequests} requests): RSS ${m.rssWarmMb.toFixed(1)} -> ${m.rssEndMb.toFixed(1)} MB (growth ${m.rssGrowthMb.toFixed(1)} MB, bound ${m.rssBoundMb}; peak ${m.rssPeakMb.toFixed(1)}), ` +
      `heap after GC ${m.heapWarmMb.toFixed(1)} -> ${m.heapEndMb.toFixed(1)} MB (growth ${m.heapGrowthMb.toFixed(1)} MB, bound ${m.heapBoundMb})${m.gcExposed ? '' : ' [no GC available: heap figures are noisy]'}`,
    `  RSS by tenth of the run (MB): ${m.rssTenthsMb.map((x) => x.toFixed(0)).join(' ')}`,
    `  violations: ${r.violations.length}${r.violations.length ? `\n    ${r.violations.join('\n    ')}` : ''}`,
  ].join('\n');
}
