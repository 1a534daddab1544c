/**
 * From request records to the figures a load test prints: requests/s, generated tokens/s, TTFT and
 * latency percentiles, and every kind of error counted separately. Rates are over the run's own
 * wall time (first send to last response), not autocannon's, which rounds up to its 1 s sampler.
 */
import { cpus, totalmem } from 'node:os';
import type { FireResult, RequestRecord } from './cannon.js';

export interface Percentiles {
  p50: number;
  p99: number;
}

export interface Summary {
  title: string;
  streaming: boolean;
  sent: number;
  ok: number;
  wallSeconds: number;
  requestsPerSecond: number;
  tokensPerSecond: number;
  /** null when no request produced content. */
  ttft: Percentiles | null;
  latency: Percentiles | null;
  errors: {
    non2xx: number;
    byStatus: Record<string, number>;
    socket: number;
    timeouts: number;
    streamErrors: number;
    truncated: number;
    unanswered: number;
    cutAtDeadline: number;
  };
  /** A few distinct error details, for the report. */
  examples: string[];
}

/** Nearest-rank percentile; p in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const median = (values: readonly number[]): number => percentile(values, 50);

function percentiles(values: readonly number[]): Percentiles | null {
  return values.length ? { p50: percentile(values, 50), p99: percentile(values, 99) } : null;
}

/** Wall time of a set of records: first send to last response. */
export function wallSeconds(records: readonly RequestRecord[]): number {
  if (records.length === 0) return 0;
  let first = Infinity, last = -Infinity;
  for (const r of records) {
    first = Math.min(first, r.sentAt);
    last = Math.max(last, r.endedAt);
  }
  return (last - first) / 1000;
}

/**
 * `subset` picks the records to report (e.g. one calibration variant); the wall time is always the
 * whole run's, so per-subset rates add up to the run's.
 */
export function summarize(title: string, streaming: boolean, result: FireResult, subset?: (r: RequestRecord) => boolean): Summary {
  const all = result.records;
  const records = subset ? all.filter(subset) : all;
  const wall = wallSeconds(all);
  const ok = records.filter((r) => r.outcome === 'ok');
  const byStatus: Record<string, number> = {};
  for (const r of records) if (r.outcome === 'http-error') byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const whole = subset === undefined;
  return {
    title,
    streaming,
    sent: records.length + (whole ? result.unanswered + result.cutAtDeadline : 0),
    ok: ok.length,
    wallSeconds: wall,
    requestsPerSecond: wall > 0 ? ok.length / wall : 0,
    tokensPerSecond: wall > 0 ? ok.reduce((s, r) => s + r.completionTokens, 0) / wall : 0,
    ttft: percentiles(ok.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]))),
    latency: percentiles(ok.map((r) => r.endedAt - r.sentAt)),
    errors: {
      non2xx: records.filter((r) => r.outcome === 'http-error').length,
      byStatus,
      socket: whole ? result.socketErrors : 0,
      timeouts: whole ? result.timeouts : 0,
      streamErrors: records.filter((r) => r.outcome === 'stream-error').length,
      truncated: records.filter((r) => r.outcome === 'truncated').length,
      unanswered: whole ? result.unanswered : 0,
      cutAtDeadline: whole ? result.cutAtDeadline : 0,
    },
    examples: [...new Set(records.flatMap((r) => (r.detail ? [`${r.outcome}: ${r.detail}`] : [])))].slice(0, 5),
  };
}

const ms = (x: number) => `${x.toFixed(1)} ms`;

export function formatSummary(s: Summary): string {
  const e = s.errors;
  const statuses = Object.entries(e.byStatus).map(([code, n]) => `${code}×${n}`).join(' ');
  const lines = [
    `  requests/s         ${s.requestsPerSecond.toFixed(2).padStart(9)}   (${s.ok} ok of ${s.sent} sent, ${s.wallSeconds.toFixed(1)} s)`,
    `  generated tok/s    ${s.tokensPerSecond.toFixed(0).padStart(9)}`,
    s.streaming
      ? `  TTFT               p50 ${s.ttft ? ms(s.ttft.p50) : 'n/a'}   p99 ${s.ttft ? ms(s.ttft.p99) : 'n/a'}   (send → first content chunk)`
      : `  TTFT = latency     p50 ${s.latency ? ms(s.latency.p50) : 'n/a'}   p99 ${s.latency ? ms(s.latency.p99) : 'n/a'}   (non-streaming: the first token arrives with the whole body)`,
    ...(s.streaming ? [`  latency            p50 ${s.latency ? ms(s.latency.p50) : 'n/a'}   p99 ${s.latency ? ms(s.latency.p99) : 'n/a'}   (send → [DONE])`] : []),
    `  errors             non-2xx ${e.non2xx}${statuses ? ` (${statuses})` : ''}, socket ${e.socket}, timeouts ${e.timeouts}, stream errors ${e.streamErrors}, truncated ${e.truncated}, unanswered ${e.unanswered}` +
      (e.cutAtDeadline ? `; ${e.cutAtDeadline} in flight cut at the time bound` : ''),
    ...s.examples.map((x) => `    e.g. ${x}`),
  ];
  return lines.join('\n');
}

/** The one-line row a subset gets under its scenario. */
export function formatRow(s: Summary): string {
  const t = s.streaming ? s.ttft : s.latency;
  return `  ${s.title.padEnd(20)} ${String(s.ok).padStart(4)} ok  ${s.tokensPerSecond.toFixed(0).padStart(6)} tok/s  TTFT p50 ${t ? ms(t.p50) : 'n/a'} p99 ${t ? ms(t.p99) : 'n/a'}  errors ${s.errors.non2xx + s.errors.streamErrors + s.errors.truncated}`;
}

export function machineHeader(what: string): string {
  const c = cpus();
  return `${what}: ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC, ${c.length} x ${c[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${process.platform}/${process.arch}`;
}

/** `attune:request_failure_total` by reason, from /metrics text. */
export function failureCounts(metricsText: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metricsText.split('\n')) {
    const m = /^attune:request_failure_total\{([^}]*)\}\s+(\S+)/.exec(line);
    const reason = m && /reason="([^"]*)"/.exec(m[1]!)?.[1];
    if (m && reason) out[reason] = (out[reason] ?? 0) + Number(m[2]);
  }
  return out;
}

/** What rose between two failureCounts snapshots, as "reason n, ..." (empty when nothing did). */
export function failureDelta(before: Record<string, number>, after: Record<string, number>): string {
  return Object.entries(after)
    .map(([reason, n]) => [reason, n - (before[reason] ?? 0)] as const)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
}
