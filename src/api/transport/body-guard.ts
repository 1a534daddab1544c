/**
 * What a request body may cost before its handler runs: time (a deadline from the end of the headers
 * to the last byte), memory (one budget of buffered body bytes shared by every connection), size
 * after decompression (zip bombs), and for JSON its shape (see json-shape.ts). Every refusal is an
 * ApiError that surfaces through Fastify's body parsing, so it gets the usual error shape, and the
 * connection is then closed (the rest of the body is never read).
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { ApiError, clientGone } from '../errors.js';
import { JsonShapeScanner, type JsonShapeLimits } from './json-shape.js';

/** Request-body bytes held at once, across all connections. */
export class BodyBudget {
  private used = 0;

  constructor(readonly limitBytes: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes `bytes` if they fit (a lone request may always take its own body). */
  tryTake(bytes: number): boolean {
    if (this.used > 0 && this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

export function bodyMemoryFull(budget: BodyBudget, retryAfterSeconds: number): ApiError {
  const MiB = 1024 * 1024;
  return new ApiError(503, `the server is reading too many request bodies at once (${(budget.inUse / MiB).toFixed(1)} MiB buffered, the limit is ${(budget.limitBytes / MiB).toFixed(1)} MiB (body_memory)); retry later`, {
    type: 'unavailable_error',
    code: 'body_memory_full',
    headers: { 'retry-after': String(retryAfterSeconds) },
    failure: 'overloaded',
  });
}

export function bodyTimedOut(timeoutMs: number): ApiError {
  return new ApiError(408, `the request body did not arrive within ${timeoutMs / 1000} s of its headers (body_timeout)`, {
    type: 'timeout_error',
    code: 'body_timeout',
    // Counted as a client that went away mid-upload, not as a generation that ran out of time.
    failure: 'aborted',
  });
}

/** One request's claim on the budget; idempotent release. */
export class BodyTicket {
  private held = 0;
  private released = false;

  constructor(private readonly budget: BodyBudget) {}

  /** Makes sure `total` bytes are held; false if the budget cannot grow that far. */
  cover(total: number): boolean {
    if (this.released || total <= this.held) return true;
    if (!this.budget.tryTake(total - this.held)) return false;
    this.held = total;
    return true;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.give(this.held);
    this.held = 0;
  }
}

export type ContentDecoder = 'gzip' | 'deflate' | 'br' | null;

/** The decoder for a Content-Encoding header, or an ApiError (415) for one attune does not read. */
export function contentDecoder(header: string | undefined): ContentDecoder | ApiError {
  const enc = (header ?? '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') return null;
  if (enc === 'gzip' || enc === 'x-gzip') return 'gzip';
  if (enc === 'deflate') return 'deflate';
  if (enc === 'br') return 'br';
  return new ApiError(415, `Content-Encoding '${header}' is not supported; send the body uncompressed, or as gzip, deflate or br`, {
    param: null,
    code: 'unsupported_content_encoding',
  });
}

export interface BodyGuardOptions {
  ticket: BodyTicket;
  bodyLimitBytes: number;
  retryAfterSeconds: number;
  budget: BodyBudget;
  /** null: not JSON, no shape check. */
  jsonShape: JsonShapeLimits | null;
}

/**
 * The stream Fastify reads the body from (returned by a preParsing hook): the raw bytes, decoded
 * when they are compressed, counted and checked on the way. Fastify compares `receivedEncodedLength`
 * (the bytes on the wire) with Content-Length.
 */
export class BodyGuard extends Transform {
  receivedEncodedLength = 0;
  private decodedBytes = 0;
  private readonly scanner: JsonShapeScanner | null;
  private decoder: Transform | null = null;

  constructor(private readonly opts: BodyGuardOptions) {
    super();
    this.scanner = opts.jsonShape ? new JsonShapeScanner(opts.jsonShape) : null;
  }

  /** Pipes `raw` through the decoder, if any, into this guard. `raw` is never destroyed here. */
  attach(raw: IncomingMessage, decoder: ContentDecoder): this {
    raw.on('data', (c: Buffer) => (this.receivedEncodedLength += c.length));
    // pipe() does not pass a source's end on: a client that leaves mid-upload ends the body here.
    raw.once('close', () => {
      if (!raw.complete) this.fail(clientGone('the client closed the connection while sending the request body'));
    });
    if (!decoder) {
      raw.pipe(this);
      return this;
    }
    this.decoder = decoder === 'gzip' ? createGunzip() : decoder === 'deflate' ? createInflate() : createBrotliDecompress();
    this.decoder.on('error', (e) => this.fail(new ApiError(400, `the request body is not valid ${decoder} data: ${e.message}`, { code: 'invalid_content_encoding' })));
    raw.pipe(this.decoder).pipe(this);
    return this;
  }

  /** Ends the body with an error, which Fastify hands to the error handler. */
  fail(error: ApiError): void {
    if (this.destroyed) return;
    this.decoder?.destroy();
    this.destroy(error);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.decodedBytes += chunk.length;
    // Decompressed bytes count against the body limit as they come, so a zip bomb stops here.
    if (this.decodedBytes > this.opts.bodyLimitBytes) {
      done(new ApiError(413, `the request body is larger than the limit of ${this.opts.bodyLimitBytes} bytes (body_limit)${this.decoder ? ' once decompressed' : ''}`, { code: 'body_too_large' }));
      this.decoder?.destroy();
      return;
    }
    if (!this.opts.ticket.cover(this.decodedBytes)) {
      done(bodyMemoryFull(this.opts.budget, this.opts.retryAfterSeconds));
      this.decoder?.destroy();
      return;
    }
    const violation = this.scanner?.push(chunk);
    if (violation) {
      done(new ApiError(400, violation.message, { param: violation.path || null, code: 'body_too_complex' }));
      this.decoder?.destroy();
      return;
    }
    done(null, chunk);
  }
}
