/**
 * What every load scenario does: start its own server on loopback, warm it up (JIT, ORT, first
 * allocations) with requests that are not counted, fire the measured run bounded in count and
 * time, print the figures, and stop the server.
 *
 * Knobs, so the same scripts serve a quick check and a long run on a quiet machine:
 *   LOAD_SCALE        multiplies every scenario's request count (default 1)
 *   LOAD_MAX_SECONDS  replaces every scenario's time bound
 *   LOAD_LOG_LEVEL    the server's log level (default warn; its warnings are echoed and counted)
 *   LOAD_SERVER_FLAGS more `attune serve` flags for every server, e.g. "--threads 2"
 *   LOAD_MODEL        the model (default: attune's default model)
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fire } from './cannon.js';
import { failureCounts, failureDelta, formatRow, formatSummary, summarize, type Summary } from './report.js';
import { startServer } from './server-handle.js';
import { interleaved, type LoadRequest } from './workload.js';

export interface ScenarioOptions {
  connections?: number;
  /** Requests in the measured run. */
  amount?: number;
  maxSeconds?: number;
  /** `attune serve` flags for the server under test. */
  serverFlags?: string[];
}

export interface ScenarioDefinition {
  title: string;
  streaming: boolean;
  defaults: Required<ScenarioOptions>;
  /** Request i of the run; the warm-up uses indices far past the run's. */
  make: (i: number) => LoadRequest;
  /** Also report each request label separately. */
  byLabel?: readonly string[];
}

export interface ScenarioResult {
  title: string;
  summary: Summary;
  byLabel: Summary[];
  /** `request_failure_total` increases during the measured run, as "reason n, ...". */
  serverFailures: string;
  /** Server log lines at warn or above, warm-up included. */
  serverProblems: string[];
}

const WARMUP_BASE = 1_000_000;
const PER_REQUEST_TIMEOUT_S = 60;
const CUT_SETTLE_MS = 1000;

function envNumber(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${v}'`);
  return n;
}

function resolveOptions(defaults: Required<ScenarioOptions>, opts: ScenarioOptions): Required<ScenarioOptions> {
  const connections = opts.connections ?? defaults.connections;
  const scale = envNumber('LOAD_SCALE') ?? 1;
  return {
    connections,
    amount: Math.max(connections, Math.round(opts.amount ?? defaults.amount * scale)),
    maxSeconds: opts.maxSeconds ?? envNumber('LOAD_MAX_SECONDS') ?? defaults.maxSeconds,
    serverFlags: opts.serverFlags ?? defaults.serverFlags,
  };
}

export async function runScenario(def: ScenarioDefinition, opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const o = resolveOptions(def.defaults, opts);
  const server = await startServer(o.serverFlags);
  const flags = server.flags.length ? `attune serve ${server.flags.join(' ')}` : 'attune serve defaults';
  console.log(`\n== ${def.title}: ${o.connections} connections, ${o.amount} requests or ${o.maxSeconds} s, whichever ends first; server: ${flags} ==`);
  let outcome: Omit<ScenarioResult, 'serverProblems'>;
  try {
    await fire({
      url: server.url,
      connections: o.connections,
      amount: o.connections,
      maxSeconds: o.maxSeconds,
      timeoutSeconds: PER_REQUEST_TIMEOUT_S,
      source: interleaved(o.connections, (i) => def.make(WARMUP_BASE + i)),
    });
    const before = failureCounts(await server.metrics());
    const result = await fire({
      url: server.url,
      connections: o.connections,
      amount: o.amount,
      maxSeconds: o.maxSeconds,
      timeoutSeconds: PER_REQUEST_TIMEOUT_S,
      source: interleaved(o.connections, def.make),
    });
    // Streams cut at the time bound are aborted server-side a moment later; count those too.
    if (result.cutAtDeadline > 0) await new Promise((r) => setTimeout(r, CUT_SETTLE_MS));
    const serverFailures = failureDelta(before, failureCounts(await server.metrics()));
    const summary = summarize(def.title, def.streaming, result);
    const byLabel = (def.byLabel ?? []).map((label) => summarize(label, def.streaming, result, (r) => r.label === label));
    console.log(formatSummary(summary));
    for (const s of byLabel) console.log(formatRow(s));
    console.log(`  server             request_failure_total during the run: ${serverFailures || 'none'}`);
    outcome = { title: def.title, summary, byLabel, serverFailures };
  } finally {
    await server.stop();
  }
  console.log(`  server             ${server.problems.length} log lines at warn or above (warm-up and shutdown included)`);
  return { ...outcome, serverProblems: [...server.problems] };
}

/** True when this module is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && pathToFileURL(resolve(process.argv[1])).href === moduleUrl;
}

export function runMain(main: () => Promise<unknown>): void {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
