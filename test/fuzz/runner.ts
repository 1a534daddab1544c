/**
 * Sends generated cases to a server with bounded concurrency and tallies what came back. Nothing
 * throws per request: every problem is recorded with enough of the case to reproduce it.
 */
import { Prng } from '../helpers/prng.js';
import { keepAliveAgent, sendRaw } from '../helpers/raw-http.js';
import { classifyResponse } from '../helpers/response-check.js';
import { CaseGenerator, type FuzzCase, type FuzzTarget } from './generator.js';

export interface FuzzProblem {
  seed: number;
  seq: number;
  kind: string;
  request: string;
  detail: string;
}

export interface FuzzReport {
  seed: number;
  requests: number;
  /** Status (or `sse:<code>`, `conn:<error>`) → count. */
  statuses: Record<string, number>;
  serverErrors: number;
  problems: FuzzProblem[];
  elapsedMs: number;
}

export interface FuzzRunOptions {
  url: string;
  target: FuzzTarget;
  seed: number;
  requests: number;
  concurrency: number;
  timeoutMs?: number;
}

function describeRequest(c: FuzzCase): string {
  const body = c.body ? JSON.stringify(c.body.subarray(0, 240).toString('latin1')) : '';
  const size = c.body && c.body.length > 240 ? ` (${c.body.length} bytes)` : '';
  return `${c.method} ${c.path.slice(0, 80)} ${JSON.stringify(c.headers)} ${body}${size}`;
}

export async function runFuzz(opts: FuzzRunOptions): Promise<FuzzReport> {
  const gen = new CaseGenerator(new Prng(opts.seed), opts.target);
  const agent = keepAliveAgent(opts.concurrency);
  const report: FuzzReport = { seed: opts.seed, requests: 0, statuses: {}, serverErrors: 0, problems: [], elapsedMs: 0 };
  const started = performance.now();
  let issued = 0;
  const problem = (c: FuzzCase, detail: string) => report.problems.push({ seed: opts.seed, seq: c.seq, kind: c.kind, request: describeRequest(c), detail });

  const lane = async () => {
    while (issued < opts.requests) {
      issued++;
      const c = gen.next();
      const outcome = await sendRaw(opts.url, { method: c.method, path: c.path, headers: c.headers, body: c.body }, { agent, timeoutMs: opts.timeoutMs ?? 120_000 });
      report.requests++;
      if (!outcome.ok) {
        const label = `conn:${outcome.error}`;
        report.statuses[label] = (report.statuses[label] ?? 0) + 1;
        // A server may answer 413 and close before an oversize body is fully sent; the client then
        // sees a reset instead of the status. Anything else losing the connection is a failure.
        if (c.kind !== 'http.oversize') problem(c, `no response: ${outcome.error}`);
        continue;
      }
      const res = outcome.response;
      const v = classifyResponse(res);
      report.statuses[v.label] = (report.statuses[v.label] ?? 0) + 1;
      if (v.serverError) report.serverErrors++;
      for (const p of v.problems) problem(c, p);
      const success = res.status >= 200 && res.status < 300 && !v.label.startsWith('sse:');
      if (c.expect === 'reject' && success) problem(c, `accepted (${res.status}) a request that must be refused: ${res.body.subarray(0, 160).toString('utf8')}`);
      if (c.expect === 'accept' && !success && res.status !== 429) problem(c, `refused (${v.label}) a valid request: ${res.body.subarray(0, 240).toString('utf8')}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, lane));
  } finally {
    agent.destroy();
  }
  report.elapsedMs = performance.now() - started;
  return report;
}

export function summaryLine(r: FuzzReport): string {
  const statuses = Object.entries(r.statuses)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  return `fuzz seed=${r.seed}: ${r.requests} requests in ${(r.elapsedMs / 1000).toFixed(1)} s; status ${statuses}; 5xx ${r.serverErrors}; problems ${r.problems.length}`;
}
