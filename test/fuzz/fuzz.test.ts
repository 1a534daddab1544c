/**
 * The fuzz suite: thousands of malformed and adversarial requests from a seeded generator, sent 16 at
 * a time to a real server on loopback. Afterwards nothing may be broken: no response was a 5xx, every
 * 4xx had the OpenAI error shape, no request the generator knows to be invalid was accepted (nor a
 * valid one refused), the server logged no error, and it still answers greedy requests with exactly
 * the tokens it gave before, with every KV slot and admission ticket released.
 *
 * Beside them, against a second server on the same engine with short connection deadlines, slow
 * and non-reading clients (slow-clients.ts): bodies trickled or stalled, idle and slowloris
 * connections, responses read slowly or not at all. Those must be answered or closed as the
 * deadlines say, and leave nothing behind either.
 *
 * CI runs 4,000 requests from one fixed seed and 40 slow clients. `npm run fuzz` (ATTUNE_FUZZ_FULL=1)
 * runs 50,000 over ten seeds and 400 slow clients. To replay one run: ATTUNE_FUZZ_SEED=<seed>
 * ATTUNE_FUZZ_REQUESTS=<n>.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { actLayers } from '../../calibrators/act.js';
import { postJson } from '../helpers/http.js';
import { Prng } from '../helpers/prng.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { ChatCompletion, Completion } from '../helpers/openai-types.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';
import type { FuzzTarget } from './generator.js';
import { runFuzz, summaryLine, type FuzzReport } from './runner.js';
import { runSlowClients } from './slow-clients.js';

const CI_SEED = 0x5eed_2024;
const FULL = process.env.ATTUNE_FUZZ_FULL === '1';
const SEEDS = process.env.ATTUNE_FUZZ_SEED ? [Number(process.env.ATTUNE_FUZZ_SEED)] : FULL ? [CI_SEED, 1, 2, 3, 4, 5, 6, 7, 8, 9] : [CI_SEED];
const PER_SEED = Number(process.env.ATTUNE_FUZZ_REQUESTS ?? (FULL ? 5_000 : 4_000));
const CONCURRENCY = 16;
const SLOW_CLIENTS = Number(process.env.ATTUNE_FUZZ_SLOW_CLIENTS ?? (FULL ? 400 : 40));
const SLOW_LIMITS = { bodyTimeoutMs: 600, writeTimeoutMs: 600, idleTimeoutMs: 600 };

const KiB = 1024;

/** Greedy requests whose tokens must not change across the fuzz: plain, chat, and calibrated. */
const PROBES = {
  completion: { prompt: 'Once upon a time', max_tokens: 24, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true },
  calibrated: { prompt: 'Once upon a time', max_tokens: 24, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true, calibration: { act: { heads: { 2: [0, 1] }, beta: 0.3 } } },
  chat: { messages: [{ role: 'user', content: 'Lily went to the park' }], max_tokens: 16, temperature: 0, logprobs: true, return_tokens_as_token_ids: true },
};

async function greedyTokens(url: string): Promise<Record<keyof typeof PROBES, string[]>> {
  const c = await postJson<Completion>(`${url}/v1/completions`, PROBES.completion);
  const a = await postJson<Completion>(`${url}/v1/completions`, PROBES.calibrated);
  const h = await postJson<ChatCompletion>(`${url}/v1/chat/completions`, PROBES.chat);
  for (const r of [c, a, h]) assert.equal(r.status, 200, JSON.stringify(r.body));
  return {
    completion: c.body.choices[0]!.logprobs!.tokens,
    calibrated: a.body.choices[0]!.logprobs!.tokens,
    chat: h.body.choices[0]!.logprobs!.content.map((e) => e.token),
  };
}

describe('fuzz', () => {
  let s: TestServer;
  /** The slow clients' server: the same engine, short connection deadlines. */
  let slow: TestServer;
  const errorLogs: string[] = [];
  const stray: unknown[] = [];
  const onStray = (e: unknown) => stray.push(e);
  // A "possible memory leak" warning from the server's own listeners would be one per request in production.
  const warnings: string[] = [];
  const onWarning = (w: Error) => {
    if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
  };

  before(async () => {
    s = await startTestServer(
      {
        // The production default, so the logging path (with prompt redaction) runs on every case.
        logLevel: 'info',
        readyCacheSeconds: 0,
        requestTimeoutSeconds: 60,
        // Small enough that oversize bodies and images are cheap to send, large enough for 100k-deep nesting.
        limits: { bodyLimitBytes: 1024 * KiB, maxImageBytes: 64 * KiB },
      },
      {
        logStream: {
          write(line: string) {
            // pino levels: 50 error, 60 fatal.
            if (/"level":(50|60)/.test(line)) errorLogs.push(line.slice(0, 600));
          },
        },
      },
    );
    slow = await startTestServer(
      {
        logLevel: 'info',
        http: { bodyTimeoutSeconds: SLOW_LIMITS.bodyTimeoutMs / 1000, writeTimeoutSeconds: SLOW_LIMITS.writeTimeoutMs / 1000, idleTimeoutSeconds: SLOW_LIMITS.idleTimeoutMs / 1000 },
      },
      {
        engine: s.engine,
        logStream: {
          write(line: string) {
            if (/"level":(50|60)/.test(line)) errorLogs.push(line.slice(0, 600));
          },
        },
      },
    );
    process.on('unhandledRejection', onStray);
    process.on('uncaughtException', onStray);
    process.on('warning', onWarning);
  });
  after(async () => {
    process.off('unhandledRejection', onStray);
    process.off('uncaughtException', onStray);
    process.off('warning', onWarning);
    await slow.close();
    await s.close();
  });

  it(`survives ${SEEDS.length * PER_SEED} adversarial requests and still serves the same tokens`, { timeout: 30 * 60_000 }, async () => {
    const { engine, assets, app } = s;
    const info = engine.info;
    const limits = app.attune.config.limits;
    const target: FuzzTarget = {
      modelId: info.name,
      vocabSize: info.config.vocabSize,
      maxModelLen: info.maxModelLen,
      nHeads: info.config.nHeads,
      actLayers: actLayers({ name: info.name, config: info.config, profile: assets.profile }),
      bodyLimitBytes: limits.bodyLimitBytes,
      maxPromptChars: limits.maxPromptChars || 64 * info.maxModelLen,
      maxImageBytes: limits.maxImageBytes,
      maxMessages: limits.maxMessages,
      maxStopStrings: limits.maxStopStrings,
      maxStopStringLength: limits.maxStopStringLength,
      maxStopTokenIds: limits.maxStopTokenIds,
      maxLogitBias: limits.maxLogitBias,
      maxN: limits.maxN,
      maxPrompts: limits.maxPrompts,
    };
    const before = await greedyTokens(s.url);

    const reports: FuzzReport[] = [];
    const slowClients = runSlowClients({ url: slow.url, r: new Prng(SEEDS[0]!).fork(), cases: SLOW_CLIENTS, concurrency: 4, limits: SLOW_LIMITS });
    for (const seed of SEEDS) {
      const report = await runFuzz({ url: s.url, target, seed, requests: PER_SEED, concurrency: CONCURRENCY });
      console.log(summaryLine(report));
      reports.push(report);
    }
    const slowReport = await slowClients;
    console.log(`slow clients: ${slowReport.cases} cases; ${JSON.stringify(slowReport.outcomes)}; problems ${slowReport.problems.length}`);
    assert.deepEqual(slowReport.problems, [], 'slow and non-reading clients');
    const total = reports.reduce((a, r) => a + r.requests, 0);
    const serverErrors = reports.reduce((a, r) => a + r.serverErrors, 0);
    const problems = reports.flatMap((r) => r.problems);
    const statuses: Record<string, number> = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    console.log(`fuzz total: ${total} requests; status ${JSON.stringify(statuses)}; 5xx ${serverErrors}; problems ${problems.length}`);

    const show = problems.slice(0, 12).map((p) => `  seed ${p.seed} #${p.seq} [${p.kind}] ${p.detail}\n    ${p.request}`).join('\n');
    assert.equal(serverErrors, 0, `5xx responses:\n${show}`);
    assert.equal(problems.length, 0, `problems:\n${show}`);
    assert.ok(total >= SEEDS.length * PER_SEED);
    assert.deepEqual(errorLogs, [], 'the server logged errors');
    assert.deepEqual(stray, [], 'unhandled rejections or exceptions');
    assert.deepEqual(warnings, [], 'listener-leak warnings');

    // Nothing leaked: slots, admission, in-flight generations, and the KV gauge all back to zero.
    await waitFor(() => engine.stats.slotsInUse === 0 && engine.inFlight === 0, 'the engine to go idle', 60_000);
    await waitFor(() => app.attune.admission.admitted === 0 && app.attune.lifecycle.activeGenerations === 0, 'admission to be released', 60_000);
    await waitFor(() => slow.app.attune.admission.admitted === 0 && slow.app.attune.lifecycle.activeGenerations === 0, 'the slow clients\' admission to be released', 60_000);
    assert.equal(app.attune.admission.queuedTokens, 0);
    const slowMetrics = await scrape(slow.url);
    assert.equal(metricValue(slowMetrics, 'attune:request_failure_total', { reason: 'internal' }), 0);
    if (slowReport.unread > 0) assert.ok(metricValue(slowMetrics, 'attune:http_connections_closed_total', { reason: 'write_timeout' })! > 0, 'unread responses were cut');
    const metrics = await scrape(s.url);
    assert.equal(metricValue(metrics, 'attune:kv_cache_usage_perc'), 0);
    assert.equal(metricValue(metrics, 'attune:request_failure_total', { reason: 'internal' }), 0);
    assert.equal((await fetch(`${s.url}/ready`)).status, 200);

    assert.deepEqual(await greedyTokens(s.url), before, 'greedy tokens changed after the fuzz');
  });
});
