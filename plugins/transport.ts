/**
 * The connection layer against slow and greedy clients (src/api/transport/): a cap on connections,
 * idle sockets closed, a deadline and a shared memory budget for request bodies (which are also
 * decompressed and shape-checked on the way in), what becomes of a body an answer came before (read
 * and dropped when small or refused for its content, else the connection is closed), and responses
 * cut when their client stops reading. Each closing is logged and counted in
 * `attune:http_connections_closed_total{reason}`.
 *
 * Registered first, so that its refusal of connections over the cap comes before authentication and
 * admission; the body's guard is set up once those have let the request through.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../src/api/errors.js';
import { BodyBudget, BodyGuard, bodyMemoryFull, BodyTicket, bodyTimedOut, contentDecoder } from '../src/api/transport/body-guard.js';
import { ConnectionGuard, type ConnectionCloseReason } from '../src/api/transport/connection-guard.js';
import type { JsonShapeLimits } from '../src/api/transport/json-shape.js';
import { markCutForNotReading } from '../src/api/transport/stalled.js';
import { slicedBody, SLICE_BYTES, WriteWatchdog } from '../src/api/transport/write-watchdog.js';
import type { HttpConfig } from '../src/config/schema.js';
import type { ServerMetrics } from '../src/observability/metrics.js';

export interface TransportPluginOptions {
  http: HttpConfig;
  bodyLimitBytes: number;
  retryAfterSeconds: number;
  /** Shape limits for JSON bodies. */
  jsonShape: JsonShapeLimits;
  secure: boolean;
  metrics: ServerMetrics;
}

interface BodyState {
  ticket: BodyTicket;
  timer: NodeJS.Timeout | null;
  guard: BodyGuard | null;
  expired: ApiError | null;
  /** Refused mid-body for what the body is (too large, too complex, badly encoded): see `linger`. */
  refusedForContent: boolean;
}

/** A body refused before it was read is read and dropped (not the connection closed) up to this size. */
const LINGER_BYTES = 64 * 1024;

/** Refusals of a body's content, after which the rest of the body is read and dropped (see `linger`). */
const CONTENT_REFUSALS = new Set(['body_too_complex', 'body_too_large', 'invalid_content_encoding', 'unsupported_content_encoding']);

function tooManyConnections(max: number, retryAfterSeconds: number): ApiError {
  return new ApiError(503, `the server has more than ${max} open connections (max_connections); retry later`, {
    type: 'unavailable_error',
    code: 'too_many_connections',
    headers: { 'retry-after': String(retryAfterSeconds), connection: 'close' },
    failure: 'overloaded',
  });
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

export const transportPlugin = fp<TransportPluginOptions>(
  async (app, opts) => {
    const { http, metrics } = opts;
    const closed = (reason: ConnectionCloseReason) => metrics.connectionClosed(reason);
    const connections = new ConnectionGuard(app.server, { maxConnections: http.maxConnections, idleTimeoutMs: http.idleTimeoutSeconds * 1000 }, opts.secure, closed);
    metrics.observeConnections(() => connections.open);
    const budget = new BodyBudget(http.bodyMemoryBytes);
    const watchdog = new WriteWatchdog(http.writeTimeoutSeconds * 1000);
    const bodies = new WeakMap<IncomingMessage, BodyState>();
    app.addHook('onClose', async () => watchdog.close());

    const settleBody = (req: IncomingMessage) => {
      const state = bodies.get(req);
      if (!state) return;
      state.ticket.release();
      if (state.timer) clearTimeout(state.timer);
      state.timer = null;
    };

    /**
     * Reads the rest of a body nobody will use and drops it, within the body deadline and the body
     * limit (nginx's lingering close): the connection stays usable once the body has ended, and a
     * client still writing sees the answer instead of a reset.
     */
    const linger = (raw: IncomingMessage, limitBytes: number) => {
      let read = 0;
      const timer = http.bodyTimeoutSeconds > 0
        ? setTimeout(() => {
            closed('body_timeout');
            raw.socket.destroy();
          }, http.bodyTimeoutSeconds * 1000)
        : null;
      // The socket keeps the process alive while it is open; the timer alone must not.
      timer?.unref();
      const done = () => {
        if (timer) clearTimeout(timer);
      };
      raw.on('data', (c: Buffer) => {
        if ((read += c.length) > limitBytes) raw.socket.destroy();
      });
      raw.once('end', done);
      raw.once('close', done);
      raw.resume();
    };

    // Refusals that need no body come first, and cost no more than the refusal.
    app.addHook('onRequest', async (request) => {
      if (connections.isOverCap(request.raw.socket) && request.routeOptions.config?.probe !== true) {
        closed('max_connections');
        request.log.warn({ open: connections.open }, 'refused a request: too many connections');
        throw tooManyConnections(http.maxConnections, opts.retryAfterSeconds);
      }
    });

    // Runs once every onRequest hook has let the request through (auth, admission's door).
    app.addHook('preParsing', async (request, reply, payload) => {
      const { raw } = request;
      if (!hasBody(raw)) return payload;
      const state: BodyState = { ticket: new BodyTicket(budget), timer: null, guard: null, expired: null, refusedForContent: false };
      bodies.set(raw, state);
      reply.raw.once('close', () => settleBody(raw));
      const declared = Number(raw.headers['content-length']);
      // Over the body limit Fastify answers 413 without reading; otherwise the declared size is held
      // up front, so that many slow uploads cannot each pin a large body.
      if (Number.isFinite(declared) && declared <= opts.bodyLimitBytes && !state.ticket.cover(declared)) {
        closed('body_memory');
        throw bodyMemoryFull(budget, opts.retryAfterSeconds);
      }
      const timeoutMs = http.bodyTimeoutSeconds * 1000;
      if (timeoutMs > 0) {
        state.timer = setTimeout(() => {
          state.timer = null;
          if (raw.complete) return;
          closed('body_timeout');
          request.log.info({ received: state.guard?.receivedEncodedLength ?? 0 }, 'request body timed out');
          state.expired = bodyTimedOut(timeoutMs);
          state.guard?.fail(state.expired);
        }, timeoutMs);
        state.timer.unref();
      }
      const decoder = contentDecoder(request.headers['content-encoding']);
      if (decoder instanceof ApiError) {
        state.refusedForContent = true;
        throw decoder;
      }
      const json = /^application\/json\b/i.test(request.headers['content-type'] ?? '');
      state.guard = new BodyGuard({
        ticket: state.ticket,
        bodyLimitBytes: opts.bodyLimitBytes,
        retryAfterSeconds: opts.retryAfterSeconds,
        budget,
        jsonShape: json ? opts.jsonShape : null,
      }).attach(raw, decoder);
      state.guard.on('error', (e) => {
        if (!(e instanceof ApiError)) return;
        if (e.code === 'body_memory_full') closed('body_memory');
        if (e.code !== null && CONTENT_REFUSALS.has(e.code)) state.refusedForContent = true;
      });
      return state.guard;
    });

    // The body is parsed: its bytes are garbage now, whatever the handler keeps of the parsed value.
    app.addHook('preValidation', async (request) => settleBody(request.raw));

    app.addHook('onSend', async (request, reply, payload) => {
      if (!request.raw.complete) endUnreadBody(request, reply);
      else if (connections.isOverCap(request.raw.socket)) reply.header('connection', 'close');
      watchResponse(request, reply);
      if ((typeof payload === 'string' || Buffer.isBuffer(payload)) && Buffer.byteLength(payload) > SLICE_BYTES) {
        reply.header('content-length', Buffer.byteLength(payload));
        return slicedBody(payload);
      }
      return payload;
    });

    /**
     * An answer given before the body was read (401, 429 or 503 at the door, a refusal of the body).
     * A body refused for its content is read to its end and dropped, so that its client sees the
     * answer; so is the rest of a small body refused for another reason, so that the connection
     * stays usable (a client refused with 429 retries on it). A large body is not worth reading, a
     * client trickling it must not keep the socket, and an answer that asks to close (a draining
     * server) is obeyed: the connection is closed.
     */
    function endUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
      const state = bodies.get(request.raw);
      const declared = Number(request.headers['content-length']);
      const asksToClose = String(reply.getHeader('connection') ?? '').toLowerCase() === 'close';
      const forContent = state?.refusedForContent === true;
      const overCap = connections.isOverCap(request.raw.socket);
      const bounded = Number.isFinite(declared) && declared <= (forContent ? opts.bodyLimitBytes : LINGER_BYTES);
      const timedOut = state?.expired !== null && state?.expired !== undefined;
      // Fastify asks to close after any body error: for a content refusal, lingering makes that moot.
      if (bounded && !overCap && !timedOut && (forContent || !asksToClose)) {
        if (forContent) reply.removeHeader('connection');
        if (state?.timer) clearTimeout(state.timer);
        linger(request.raw, forContent ? opts.bodyLimitBytes : LINGER_BYTES);
      } else reply.header('connection', 'close');
    }

    function watchResponse(request: FastifyRequest, reply: FastifyReply): void {
      const socket = request.raw.socket as Socket | undefined;
      if (!socket) return;
      const res: ServerResponse = reply.raw;
      watchdog.watch(socket, () => {
        closed('write_timeout');
        request.log.info({ unsent: socket.writableLength }, `the client read nothing for ${http.writeTimeoutSeconds} s (write_timeout); closing the connection`);
        markCutForNotReading(res);
        socket.destroy();
      });
      res.once('close', () => watchdog.unwatch(socket));
    }
  },
  { name: 'attune-transport' },
);
