/**
 * Server-sent events in the OpenAI format: `data: {json}` events, `data: [DONE]` at the end, comment
 * lines as keep-alives (so proxies do not time out an idle stream while a request queues), and
 * `X-Accel-Buffering: no` so nginx does not hold events back. The stream goes through Fastify's
 * reply (not a hijacked socket), so hooks, request-id and CORS headers, and logging still apply.
 */
import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { ErrorBody } from './errors.js';

/** Responses whose body is an SSE stream: the stream accounts for their outcome itself. */
const streamReplies = new WeakSet<ServerResponse>();

export function isStreamReply(res: ServerResponse): boolean {
  return streamReplies.has(res);
}

export class SseStream {
  private readonly stream = new PassThrough();
  private keepAlive: NodeJS.Timeout | null = null;
  private opened = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly keepAliveMs: number,
  ) {}

  get isOpen(): boolean {
    return this.opened;
  }

  /** Sends the headers and starts the keep-alive timer. Idempotent. */
  open(): void {
    if (this.opened) return;
    this.opened = true;
    streamReplies.add(this.reply.raw);
    this.reply
      .code(200)
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-accel-buffering', 'no')
      .send(this.stream);
    // A keep-alive is for an idle stream; one whose client is behind needs no more bytes.
    this.keepAlive = setInterval(() => {
      if (!this.stream.writableNeedDrain) this.write(': keep-alive\n\n');
    }, this.keepAliveMs);
    this.keepAlive.unref();
  }

  data(payload: unknown): void {
    this.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  /** A mid-stream failure: the status line is long gone, so the error travels as an event. */
  error(body: ErrorBody): void {
    this.data(body);
  }

  /** Resolves once the stream's buffer has room again (at once if it has), or it is gone. */
  drained(): Promise<void> {
    const s = this.stream;
    if (!s.writableNeedDrain || s.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const settle = () => {
        s.off('drain', settle);
        s.off('close', settle);
        resolve();
      };
      s.once('drain', settle);
      s.once('close', settle);
    });
  }

  done(): void {
    this.write('data: [DONE]\n\n');
    this.end();
  }

  end(): void {
    this.stopKeepAlive();
    if (!this.stream.writableEnded) this.stream.end();
  }

  private stopKeepAlive(): void {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = null;
  }

  private write(text: string): void {
    // After a client disconnect Fastify destroys the stream; late writes are dropped, not thrown.
    if (this.stream.destroyed || this.stream.writableEnded) {
      this.stopKeepAlive();
      return;
    }
    this.stream.write(text);
  }
}
