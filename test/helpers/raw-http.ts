/**
 * HTTP requests with full control over the bytes: any method, any Content-Type (or none), bodies that
 * are not valid UTF-8 or not JSON. fetch() normalises too much of that away for a fuzzer. Failures of
 * the connection are returned, not thrown, so thousands of requests can be tallied.
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http';

export interface RawRequest {
  method: string;
  /** Path and query, sent as given (no normalisation). */
  path: string;
  /** Header names in lower case. `content-length` is filled in unless given. */
  headers?: Record<string, string>;
  body?: Buffer | null;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type RawOutcome = { ok: true; response: RawResponse } | { ok: false; error: string };

export interface RawOptions {
  agent?: Agent;
  /** Whole-exchange deadline; past it the socket is destroyed and the outcome is an error. */
  timeoutMs?: number;
}

export function sendRaw(baseUrl: string, req: RawRequest, opts: RawOptions = {}): Promise<RawOutcome> {
  const url = new URL(baseUrl);
  const headers: Record<string, string> = { ...(req.headers ?? {}) };
  if (req.body && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = String(req.body.length);
  return new Promise((resolve) => {
    let settled = false;
    const settle = (o: RawOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    const r = request(
      { host: url.hostname, port: url.port, method: req.method, path: req.path, headers, agent: opts.agent, setHost: true },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => settle({ ok: true, response: { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) } }));
        res.on('error', (e) => settle({ ok: false, error: `response: ${e.message}` }));
        // 'end' settles a complete response first; a close without it is a response cut short.
        res.on('close', () => settle({ ok: false, error: 'response cut short' }));
      },
    );
    const timer = setTimeout(() => {
      r.destroy(new Error(`no complete response within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs ?? 120_000);
    r.on('error', (e: NodeJS.ErrnoException) => settle({ ok: false, error: e.code ?? e.message }));
    r.end(req.body ?? undefined);
  });
}

/** A keep-alive agent sized for `concurrency` parallel requests. */
export function keepAliveAgent(concurrency: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: concurrency });
}
