/**
 * One autocannon run against a live server, recording every request: status, outcome, generated
 * tokens, latency, and for streams the time to the first content chunk.
 *
 * Each connection gets its own request closures (via `setupClient` + `setRequests`), so a response
 * is always matched to the request that connection sent; with pipelining 1 a connection has one
 * request in flight. TTFT comes from the client's documented raw `body` event: autocannon emits the
 * socket buffer once per body segment it holds, so repeats of the same buffer are skipped.
 *
 * Bounds: `amount` requests in all, and `maxSeconds` of wall time, whichever comes first
 * (autocannon ignores its own `duration` when `amount` is set).
 */
import autocannon, { type Client } from 'autocannon';
import { FirstContentScanner, summarizeSse } from './sse-scan.js';
import type { LoadRequest, RequestSource } from './workload.js';

export interface FireSpec {
  url: string;
  connections: number;
  amount: number;
  maxSeconds: number;
  /** From send to the complete response; autocannon then reconnects and moves on. */
  timeoutSeconds: number;
  source: RequestSource;
}

export type Outcome = 'ok' | 'http-error' | 'stream-error' | 'truncated';

export interface RequestRecord {
  label: string;
  status: number;
  outcome: Outcome;
  /** performance.now() when the request was built for the socket, and when its response ended. */
  sentAt: number;
  endedAt: number;
  /** Streams: to the first content chunk (null if none came). Otherwise the full latency. */
  ttftMs: number | null;
  completionTokens: number;
  /** Why it was not ok, in a few words. */
  detail?: string;
}

export interface FireResult {
  records: RequestRecord[];
  statusCodes: Record<string, number>;
  /** Connection errors other than timeouts (refused, reset, closed mid-response). */
  socketErrors: number;
  timeouts: number;
  /** Requests sent that never got a response (timeouts and socket errors included). */
  unanswered: number;
  /** Requests still in flight when `maxSeconds` ran out; not errors. */
  cutAtDeadline: number;
  deadlineHit: boolean;
}

interface InFlight {
  req: LoadRequest;
  sentAt: number;
  ttftMs: number | null;
}

interface Connection {
  index: number;
  sent: number;
  current: InFlight | null;
  lastRaw: Buffer | null;
  scanner: FirstContentScanner;
}

export function fire(spec: FireSpec): Promise<FireResult> {
  const records: RequestRecord[] = [];
  const connections: Connection[] = [];
  let unanswered = 0;
  let deadlineHit = false;

  const setupClient = (client: Client) => {
    const conn: Connection = { index: connections.length, sent: 0, current: null, lastRaw: null, scanner: new FirstContentScanner() };
    connections.push(conn);
    client.on('body', (raw) => {
      if (raw === conn.lastRaw) return;
      conn.lastRaw = raw;
      const cur = conn.current;
      if (!cur || !cur.req.stream || cur.ttftMs !== null) return;
      if (conn.scanner.push(raw.toString('utf8'))) cur.ttftMs = performance.now() - cur.sentAt;
    });
    client.setRequests([
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (base) => {
          // A request still open here was given up on: autocannon timed it out or lost its socket.
          if (conn.current) unanswered++;
          const req = spec.source(conn.index, conn.sent++);
          conn.current = { req, sentAt: performance.now(), ttftMs: null };
          conn.scanner.reset();
          return { ...base, path: req.path, body: JSON.stringify(req.body) };
        },
        onResponse: (status, body) => {
          const cur = conn.current;
          conn.current = null;
          if (cur) records.push(record(cur, status, body, performance.now()));
        },
      },
    ]);
  };

  return new Promise<FireResult>((resolve, reject) => {
    const instance = autocannon(
      { url: spec.url, connections: spec.connections, amount: spec.amount, timeout: spec.timeoutSeconds, pipelining: 1, setupClient },
      (err, result) => {
        clearTimeout(deadline);
        if (err) return reject(err);
        const open = connections.filter((c) => c.current !== null).length;
        resolve({
          records,
          statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, Number(s.count)])),
          socketErrors: result.errors - result.timeouts,
          timeouts: result.timeouts,
          unanswered: unanswered + (deadlineHit ? 0 : open),
          cutAtDeadline: deadlineHit ? open : 0,
          deadlineHit,
        });
      },
    );
    const deadline = setTimeout(() => {
      deadlineHit = true;
      instance.stop();
    }, spec.maxSeconds * 1000);
  });
}

function record(cur: InFlight, status: number, body: string, endedAt: number): RequestRecord {
  const base = { label: cur.req.label, status, sentAt: cur.sentAt, endedAt };
  const latency = endedAt - cur.sentAt;
  if (status < 200 || status > 299) {
    return { ...base, outcome: 'http-error', ttftMs: null, completionTokens: 0, detail: `${status} ${errorMessage(body)}` };
  }
  if (!cur.req.stream) {
    const tokens = completionTokensOf(body);
    if (tokens === null) return { ...base, outcome: 'truncated', ttftMs: latency, completionTokens: 0, detail: 'no usage in the body' };
    return { ...base, outcome: 'ok', ttftMs: latency, completionTokens: tokens };
  }
  const s = summarizeSse(body);
  const tokens = s.completionTokens ?? s.contentChunks;
  if (s.error) return { ...base, outcome: 'stream-error', ttftMs: cur.ttftMs, completionTokens: tokens, detail: s.error };
  if (!s.done) return { ...base, outcome: 'truncated', ttftMs: cur.ttftMs, completionTokens: tokens, detail: 'no [DONE]' };
  if (s.completionTokens === null) return { ...base, outcome: 'truncated', ttftMs: cur.ttftMs, completionTokens: tokens, detail: 'no usage chunk' };
  return { ...base, outcome: 'ok', ttftMs: cur.ttftMs, completionTokens: tokens };
}

function completionTokensOf(body: string): number | null {
  try {
    const n = (JSON.parse(body) as { usage?: { completion_tokens?: unknown } }).usage?.completion_tokens;
    return typeof n === 'number' ? n : null;
  } catch {
    return null;
  }
}

function errorMessage(body: string): string {
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    return String(e?.code ?? e?.message ?? '').slice(0, 80);
  } catch {
    return body.slice(0, 80);
  }
}
