/**
 * Plain TCP clients for the transport tests: they send exactly the bytes given, when they are given,
 * and can stop reading, which no HTTP client library lets a test do.
 */
import { connect, type Socket } from 'node:net';

export interface OpenSocket {
  socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves when the server has closed the connection (or it was reset). */
  closed: Promise<void>;
}

export async function openSocket(baseUrl: string, opts: { read?: boolean } = {}): Promise<OpenSocket> {
  const url = new URL(baseUrl);
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const chunks: Buffer[] = [];
  socket.on('error', () => undefined);
  if (opts.read === false) socket.pause();
  else socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, received: () => Buffer.concat(chunks), closed };
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The first HTTP response in `raw` (headers lower-cased; the body as sent, chunked or not). */
export function parseResponse(raw: Buffer): ParsedResponse {
  const text = raw.toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete HTTP response in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) };
}

/** Request head bytes for a POST with a JSON body of `contentLength` bytes. */
export function postHead(path: string, contentLength: number, extra: Record<string, string> = {}): string {
  const headers = { host: 'x', 'content-type': 'application/json', 'content-length': String(contentLength), ...extra };
  return `POST ${path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
}

/** Waits for `p`, or rejects after `boundMs` (a bound against hanging, not a timing assertion). */
export async function within<T>(p: Promise<T>, boundMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${boundMs} ms`)), boundMs)))]);
  } finally {
    clearTimeout(timer);
  }
}
