/**
 * Slow and non-reading clients for the fuzz suite, from a seed: bodies trickled in time or past the
 * body deadline, bodies that stall or are abandoned, headers trickled past the idle timeout, idle
 * connections, streams and JSON responses read slowly or not at all. Each case states what the server
 * must do (answer in time, answer 408 and close, close an idle socket, finish a slow reader's stream),
 * and nothing may be a 5xx; the suite then checks that nothing leaked.
 */
import { request, type IncomingMessage } from 'node:http';
import type { Prng } from '../helpers/prng.js';
import { openSocket, parseResponse, postHead, within } from '../helpers/raw-socket.js';
import { errorShapeProblem, parseSseBody } from '../helpers/response-check.js';

export interface SlowClientLimits {
  bodyTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
}

export interface SlowClientReport {
  cases: number;
  /** Case kind → outcome label → count. */
  outcomes: Record<string, Record<string, number>>;
  /** Cases that left a response unread long enough to be cut. */
  unread: number;
  problems: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Larger than loopback's socket buffers hold (about 6 MB of JSON, more as a stream). */
const BIG = { prompt: [1], max_tokens: 500, n: 16, logprobs: 20, return_tokens_as_token_ids: true, temperature: 1, ignore_eos: true };

interface Exchange {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A POST whose body is written in `pieces` with `gapMs` between them; resolves with the response. */
function trickle(url: URL, path: string, body: Buffer, pieces: number, gapMs: number): Promise<Exchange | string> {
  return new Promise((resolve) => {
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => resolve(`response: ${e.message}`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    const size = Math.ceil(body.length / pieces);
    let sent = 0;
    const next = () => {
      if (req.destroyed || sent >= body.length) return;
      req.write(body.subarray(sent, sent + size));
      sent += size;
      if (sent >= body.length) req.end();
      else setTimeout(next, gapMs);
    };
    next();
  });
}

/** A POST read in small bites with pauses; resolves with the whole body once it ends. */
function readSlowly(url: URL, body: Buffer, pauseMs: number): Promise<Exchange | string> {
  return new Promise((resolve) => {
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/v1/completions', headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        res.pause();
        setTimeout(() => res.resume(), pauseMs);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => resolve(`response: ${e.message}`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end(body);
  });
}

type Check = (outcome: Exchange | string) => string | null;

const status = (want: number, code?: string): Check => (o) => {
  if (typeof o === 'string') return `expected ${want}, the connection failed: ${o}`;
  if (o.status !== want) return `expected ${want}, got ${o.status}: ${o.body.slice(0, 160)}`;
  if (want >= 400) {
    const shape = errorShapeProblem(JSON.parse(o.body));
    if (shape) return shape;
    if (code && !o.body.includes(`"code":"${code}"`)) return `expected code ${code}: ${o.body.slice(0, 160)}`;
  }
  return null;
};

export async function runSlowClients(opts: { url: string; r: Prng; cases: number; concurrency: number; limits: SlowClientLimits }): Promise<SlowClientReport> {
  const { r, limits } = opts;
  const url = new URL(opts.url);
  const report: SlowClientReport = { cases: 0, outcomes: {}, unread: 0, problems: [] };
  const small = () => Buffer.from(JSON.stringify({ prompt: r.pick(['Once upon a time', 'Lily', 'The dog']), max_tokens: r.int(1, 4), temperature: 0 }));
  const note = (kind: string, label: string, problem: string | null) => {
    const byKind = (report.outcomes[kind] ??= {});
    byKind[label] = (byKind[label] ?? 0) + 1;
    if (problem && report.problems.length < 50) report.problems.push(`${kind}: ${problem}`);
  };
  const label = (o: Exchange | string) => (typeof o === 'string' ? `conn:${o}` : String(o.status));
  /** Waits for the server to close a raw connection, then checks its answer. */
  const closedWith = async (kind: string, c: Awaited<ReturnType<typeof openSocket>>, bound: number, check: (raw: Buffer) => string | null) => {
    try {
      await within(c.closed, bound, 'the server to close the connection');
      note(kind, 'closed', check(c.received()));
    } catch (e) {
      note(kind, 'open', (e as Error).message);
      c.socket.destroy();
    }
  };

  const kinds: [number, string, () => Promise<void>][] = [
    [3, 'body.trickle-in-time', async () => {
      const body = small();
      const o = await trickle(url, '/v1/completions', body, r.int(2, 6), Math.floor(limits.bodyTimeoutMs / 20));
      note('body.trickle-in-time', label(o), status(200)(o));
    }],
    [2, 'body.trickle-late', async () => {
      const body = small();
      const o = await trickle(url, '/v1/completions', body, body.length, Math.ceil((limits.bodyTimeoutMs * 2) / body.length) + 5);
      note('body.trickle-late', label(o), status(408, 'body_timeout')(o));
    }],
    [2, 'body.stall', async () => {
      const body = small();
      const c = await openSocket(opts.url);
      c.socket.write(postHead('/v1/completions', body.length) + body.subarray(0, r.int(0, body.length - 1)).toString());
      await closedWith('body.stall', c, limits.bodyTimeoutMs * 10, (raw) => {
        const res = parseResponse(raw);
        return res.status === 408 ? errorShapeProblem(JSON.parse(res.body)) : `expected 408, got ${res.status}`;
      });
    }],
    [2, 'body.abandon', async () => {
      const body = small();
      const c = await openSocket(opts.url);
      c.socket.write(postHead(r.pick(['/v1/completions', '/v1/chat/completions', '/tokenize']), body.length + 100) + body.toString());
      await sleep(r.int(0, 50));
      c.socket.destroy();
      note('body.abandon', 'left', null);
    }],
    [1, 'headers.slowloris', async () => {
      const c = await openSocket(opts.url);
      const head = postHead('/v1/completions', 10);
      let i = 0;
      const drip = setInterval(() => {
        if (c.socket.destroyed || i >= head.length - 2) return clearInterval(drip);
        c.socket.write(head[i++]!);
      }, Math.max(5, Math.floor(limits.idleTimeoutMs / 10)));
      await closedWith('headers.slowloris', c, limits.idleTimeoutMs * 20, () => null);
      clearInterval(drip);
    }],
    [1, 'idle', async () => {
      const c = await openSocket(opts.url);
      await closedWith('idle', c, limits.idleTimeoutMs * 10, () => null);
    }],
    [2, 'read.slow-stream', async () => {
      const body = Buffer.from(JSON.stringify({ prompt: 'Once upon a time', max_tokens: r.int(20, 80), temperature: 0, stream: true, logprobs: 5 }));
      const o = await readSlowly(url, body, Math.floor(limits.writeTimeoutMs / 4));
      let problem = status(200)(o);
      if (!problem && typeof o !== 'string') {
        const sse = parseSseBody(o.body);
        problem = sse.done ? (sse.problems[0] ?? null) : 'a slow but steady reader did not get its whole stream';
      }
      note('read.slow-stream', label(o), problem);
    }],
    [1, 'read.none', async () => {
      const stream = r.chance(0.5);
      const body = JSON.stringify({ ...BIG, ...(stream ? { stream: true } : {}) });
      const c = await openSocket(opts.url, { read: false });
      c.socket.write(postHead('/v1/completions', Buffer.byteLength(body)) + body);
      // One read for the status line, then no more: the server must cut the rest. A paused client
      // cannot see that, so it leaves after a generous wait; the suite checks the server's count.
      const first = await new Promise<Buffer | null>((resolve) => {
        c.socket.once('data', (d: Buffer) => {
          c.socket.pause();
          resolve(d);
        });
        c.socket.once('close', () => resolve(null));
        c.socket.resume();
      });
      const code = first ? Number(first.toString('latin1').split(' ')[1]) : 0;
      if (code === 200) {
        await sleep(limits.writeTimeoutMs * 4 + 2000);
        report.unread++;
      }
      c.socket.destroy();
      note('read.none', `${stream ? 'stream' : 'json'}:${code || 'closed'}`, code === 200 || code === 429 ? null : `status ${code}`);
    }],
  ];

  let issued = 0;
  const lane = async () => {
    while (issued < opts.cases) {
      issued++;
      report.cases++;
      const run = r.weighted(kinds.map(([w, , f]) => [w, f] as const));
      await run();
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, lane));
  return report;
}
