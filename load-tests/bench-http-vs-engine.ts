/**
 * The benchmark: aggregate streaming generated tokens/s with 32 concurrent clients over
 * HTTP (server with --max-batch 32), against the engine alone at the same batch size, doing the
 * same work: the same chat prompts (tokenized by the server's own /tokenize), the same sampling
 * (built by the server's own schema and buildSampling), the same max_tokens with ignore_eos so both
 * sides generate exactly the same number of tokens. Target: HTTP ≥ 70% of the engine.
 *
 * Both sides stay up for the whole run and take turns (engine first in even rounds, HTTP first in
 * odd ones), so drift in machine load hits them alike; the figures are medians over rounds.
 *   node dist/load-tests/bench-http-vs-engine.js
 * Knobs: BENCH_ROUNDS (default 3), BENCH_REQUESTS_PER_CLIENT (default 6).
 */
import { fire } from './cannon.js';
import { runEngineLoad, type EngineJob } from './engine-load.js';
import { resolveLoadModel, LOAD_MODEL } from './model.js';
import { machineHeader, median, percentile, wallSeconds } from './report.js';
import { isMain, runMain } from './scenario.js';
import { startServer } from './server-handle.js';
import { chatMessages, interleaved, loadPrompts, samplingFor, type LoadRequest } from './workload.js';
import type { Limits, ServerConfig } from '../src/config/schema.js';
import { chatSchema } from '../src/api/schemas/chat.js';
import { buildSampling } from '../src/api/sampling.js';
import { loadServerConfig } from '../src/config/load-config.js';
import { EngineClient } from '../src/engine/engine-client.js';

export interface BenchOptions {
  clients?: number;
  perClient?: number;
  rounds?: number;
}

export interface SideFigures {
  tokensPerSecond: number;
  rounds: number[];
  ttftP50: number;
  ttftP99: number;
  completionTokens: number;
  errors: string[];
}

export interface BenchResult {
  clients: number;
  engine: SideFigures;
  http: SideFigures;
  /** Of the two medians. */
  ratio: number;
  /** HTTP over engine within each round (the two ran back to back), less exposed to drift. */
  roundRatios: number[];
}

/** One side's figures from one round. */
interface Round {
  tps: number;
  tokens: number;
  ttft: number[];
  errors: string[];
}

const BATCH = 32;
/** Long enough that decode, not prefill or request overhead, dominates; short enough for 512 tokens of context. */
const MAX_TOKENS = [64, 96, 128, 160, 200] as const;
const WARMUP_BASE = 1_000_000;
const ROUND_TIME_BOUND_S = 120;

function positiveInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${v}'`);
  return n;
}

export async function runBenchmark(opts: BenchOptions = {}): Promise<BenchResult> {
  const clients = opts.clients ?? BATCH;
  const perClient = opts.perClient ?? positiveInt('BENCH_REQUESTS_PER_CLIENT', 6);
  const rounds = opts.rounds ?? positiveInt('BENCH_ROUNDS', 3);
  const prompts = loadPrompts();
  const request = (i: number): LoadRequest => ({
    path: '/v1/chat/completions',
    body: { messages: chatMessages(i, prompts), ...samplingFor(i, MAX_TOKENS), ignore_eos: true, stream: true, stream_options: { include_usage: true } },
    stream: true,
    label: 'bench',
  });

  const server = await startServer(['--max-batch', String(BATCH)]);
  console.log(`\n== Benchmark: aggregate streaming generated tokens/s, ${clients} concurrent clients, batch ${BATCH}, ${LOAD_MODEL}; server: attune serve ${server.flags.join(' ')} ==`);
  const config = serverConfig(server.flags);
  let engine: EngineClient;
  try {
    engine = await EngineClient.start({ model: await resolveLoadModel(), engine: config.engine });
  } catch (e) {
    await server.stop();
    throw e;
  }
  try {
    const perRound = clients * perClient;
    const indices = [...range(WARMUP_BASE, perRound), ...range(0, rounds * perRound)];
    const jobs = await engineJobs(server.url, engine, config.limits, request, indices);
    const httpRound = async (base: number): Promise<Round> => {
      const result = await fire({
        url: server.url,
        connections: clients,
        amount: clients * perClient,
        maxSeconds: ROUND_TIME_BOUND_S,
        timeoutSeconds: ROUND_TIME_BOUND_S,
        source: interleaved(clients, (i) => request(base + i)),
      });
      const ok = result.records.filter((r) => r.outcome === 'ok');
      const bad = result.records.filter((r) => r.outcome !== 'ok').map((r) => `${r.outcome}: ${r.detail ?? ''}`);
      if (result.unanswered || result.cutAtDeadline) bad.push(`${result.unanswered + result.cutAtDeadline} requests unanswered`);
      const ttft = ok.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]));
      const tokens = ok.reduce((sum, r) => sum + r.completionTokens, 0);
      return { tps: tokens / wallSeconds(result.records), tokens, ttft, errors: bad };
    };
    const engineRound = async (base: number): Promise<Round> => {
      const r = await runEngineLoad(engine, clients, perClient, (c, j) => jobs(base + j * clients + c));
      return { tps: r.completionTokens / r.wallSeconds, tokens: r.completionTokens, ttft: r.ttftMs, errors: r.errors };
    };

    // Warm-up: JIT on both paths, and every batch shape up to 32 rows in the ORT session.
    await engineRound(WARMUP_BASE);
    await httpRound(WARMUP_BASE);

    const sides: Record<'engine' | 'http', Round[]> = { engine: [], http: [] };
    for (let r = 0; r < rounds; r++) {
      const base = r * perRound;
      const order = r % 2 === 0 ? (['engine', 'http'] as const) : (['http', 'engine'] as const);
      for (const side of order) sides[side].push(side === 'engine' ? await engineRound(base) : await httpRound(base));
    }

    const figures = (runs: Round[]): SideFigures => {
      const ttft = runs.flatMap((x) => x.ttft);
      return {
        tokensPerSecond: median(runs.map((x) => x.tps)),
        rounds: runs.map((x) => x.tps),
        ttftP50: percentile(ttft, 50),
        ttftP99: percentile(ttft, 99),
        completionTokens: runs.reduce((s, x) => s + x.tokens, 0),
        errors: runs.flatMap((x) => x.errors),
      };
    };
    const engineFigures = figures(sides.engine), httpFigures = figures(sides.http);
    const result: BenchResult = {
      clients,
      engine: engineFigures,
      http: httpFigures,
      ratio: httpFigures.tokensPerSecond / engineFigures.tokensPerSecond,
      roundRatios: sides.http.map((h, k) => h.tps / sides.engine[k]!.tps),
    };
    printBenchmark(result, { perClient, rounds, problems: server.problems.length });
    return result;
  } finally {
    await engine.close();
    await server.stop();
  }
}

/**
 * Requests `indices` as the engine would receive them from the chat route: prompt ids from the
 * server's /tokenize (template and BOS handling included), sampling from the route's own schema
 * and builder. All of it is prepared before any round, so a round never waits on setup.
 */
async function engineJobs(url: string, engine: EngineClient, limits: Limits, request: (i: number) => LoadRequest, indices: Iterable<number>): Promise<(i: number) => EngineJob> {
  const schema = chatSchema(limits);
  const shape = { maxModelLen: engine.info.maxModelLen, vocabSize: engine.info.config.vocabSize };
  const idsByMessages = new Map<string, number[]>();
  const jobs = new Map<number, EngineJob>();
  for (const i of indices) {
    const body = request(i).body;
    const key = JSON.stringify(body.messages);
    let promptIds = idsByMessages.get(key);
    if (!promptIds) {
      const res = await fetch(`${url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: body.messages }) });
      if (!res.ok) throw new Error(`/tokenize answered ${res.status}: ${await res.text()}`);
      promptIds = ((await res.json()) as { tokens: number[] }).tokens;
      idsByMessages.set(key, promptIds);
    }
    const parsed = schema.parse(body);
    jobs.set(i, { promptIds, sampling: buildSampling(parsed, { maxTokens: parsed.max_tokens!, logprobs: null, promptLogprobs: null }, shape) });
  }
  return (i: number) => {
    const job = jobs.get(i);
    if (!job) throw new Error(`engine job ${i} was not prepared`);
    return job;
  };
}

/** The configuration the server got from its flags, so the engine side runs the same engine and limits. */
function serverConfig(flags: readonly string[]): ServerConfig {
  const loaded = loadServerConfig({ argv: flags, env: {} });
  if (loaded.help) throw new Error('--help is not a benchmark setting');
  return loaded.config;
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, k) => start + k);
}

function printBenchmark(r: BenchResult, o: { perClient: number; rounds: number; problems: number }): void {
  const row = (name: string, s: SideFigures) =>
    `  ${name.padEnd(30)} ${s.tokensPerSecond.toFixed(0).padStart(7)} tok/s   rounds ${s.rounds.map((x) => x.toFixed(0)).join(' / ')}   TTFT p50 ${s.ttftP50.toFixed(1)} ms, p99 ${s.ttftP99.toFixed(1)} ms   ${s.completionTokens} tokens, ${s.errors.length} errors`;
  console.log(machineHeader('  measured'));
  console.log(`  (${r.clients} clients × ${o.perClient} requests back to back per round, ${o.rounds} rounds alternating, medians; chat prompts from load-tests/data/prompts.txt, max_tokens ${MAX_TOKENS.join('/')} with ignore_eos, temperature 0/0.7/1.0+top_p/0.8+top_k, seeded)`);
  console.log(row('engine alone (EngineClient)', r.engine));
  console.log(row('HTTP + SSE (autocannon)', r.http));
  console.log(`  HTTP / engine                  ${r.ratio.toFixed(3)}   (target ≥ 0.70; per round ${r.roundRatios.map((x) => x.toFixed(2)).join(' / ')}, median ${median(r.roundRatios).toFixed(3)})`);
  console.log('  TTFT: engine = generate() → first token event; HTTP = send → first SSE chunk with text.');
  if (r.engine.completionTokens !== r.http.completionTokens) {
    console.log(`  note: the two sides generated different token totals (${r.engine.completionTokens} vs ${r.http.completionTokens}); some requests failed`);
  }
  for (const e of [...new Set([...r.engine.errors, ...r.http.errors])].slice(0, 5)) console.log(`    e.g. ${e}`);
  if (o.problems) console.log(`  server logged ${o.problems} lines at warn or above`);
}

if (isMain(import.meta.url)) runMain(() => runBenchmark());
