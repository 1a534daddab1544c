/**
 * Drives a GenerationRun into an HTTP response, as one JSON body or as SSE.
 *
 * A stream opens (status 200 and headers) at the first engine event, or after one keep-alive
 * interval if the request is still queued, not before: a request the engine rejects, or one whose
 * deadline passes in the queue, still gets a real HTTP status. Once open, a failure can only be an
 * `error` event followed by the end of the stream. Whatever happens, the run is disposed (slots
 * aborted, admission released) and nothing escapes as an unhandled rejection.
 */
import type { FastifyReply } from 'fastify';
import type { ServerMetrics } from '../../observability/metrics.js';
import { ApiError, CLIENT_CLOSED } from '../errors.js';
import { SseStream } from '../sse.js';
import type { Responder } from './responder.js';
import type { GenerationRun } from './run.js';

/** Runs to completion and returns the body; failures are thrown for the error handler. */
export async function respondJson(run: GenerationRun, responder: Responder): Promise<unknown> {
  try {
    run.start();
    for await (const { index, event } of run.events()) responder.onEvent(index, event);
    const failure = run.failure();
    if (failure) throw failure;
    return responder.final();
  } finally {
    run.dispose();
  }
}

export interface StreamOptions {
  reply: FastifyReply;
  keepAliveMs: number;
  includeUsage: boolean;
  metrics: ServerMetrics;
}

/**
 * Starts the run (throwing synchronously if it cannot start) and streams it in the background.
 * The caller returns `reply`; errors before the stream opens go through `reply.send(error)`, i.e.
 * the error handler.
 */
export function respondStream(run: GenerationRun, responder: Responder, opts: StreamOptions): void {
  try {
    run.start();
  } catch (e) {
    run.dispose();
    throw e;
  }
  pump(run, responder, opts).catch((e: unknown) => opts.reply.log.error({ err: e }, 'streaming cleanup failed'));
}

async function pump(run: GenerationRun, responder: Responder, { reply, keepAliveMs, includeUsage, metrics }: StreamOptions): Promise<void> {
  const sse = new SseStream(reply, keepAliveMs);
  const open = () => {
    if (sse.isOpen) return;
    sse.open();
    for (const chunk of responder.openChunks()) sse.data(chunk);
  };
  const openTimer = setTimeout(open, keepAliveMs);
  try {
    for await (const { index, event } of run.events()) {
      open();
      for (const chunk of responder.onEvent(index, event)) sse.data(chunk);
      // Back-pressure: while the client is not reading, events wait here as engine events (small)
      // rather than as serialized chunks; a client that reads nothing at all is cut by the write
      // watchdog, which aborts the run.
      await sse.drained();
    }
    clearTimeout(openTimer);
    const failure = run.failure();
    if (failure) return fail(failure);
    open();
    if (includeUsage) sse.data(responder.usageChunk());
    sse.done();
  } catch (e) {
    clearTimeout(openTimer);
    reply.log.error({ err: e }, 'streaming failed');
    fail(e instanceof ApiError ? e : new ApiError(500, 'internal error while streaming', { failure: 'internal' }));
  } finally {
    run.dispose();
  }

  function fail(error: ApiError): void {
    if (!sse.isOpen) {
      reply.send(error);
      return;
    }
    if (error.failure) metrics.failed(error.failure);
    if (error.statusCode !== CLIENT_CLOSED) sse.error(error.toBody());
    sse.end();
  }
}
