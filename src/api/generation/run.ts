/**
 * One HTTP request's engine sequences (one per choice), from submission to cleanup. It owns the
 * request's AbortController, which three things can fire: the client going away (the response
 * closes before it finished), the per-request deadline, and a drain that ran out of time. Aborting
 * reaches the engine through EngineClient.generate's signal, and the engine frees the slot at its
 * next step boundary.
 *
 * It yields the sequences' events merged in arrival order and keeps the accounting: admission
 * (a sequence leaves the queue at its first event), per-sequence metrics, and the first failure.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FastifyReply } from 'fastify';
import { EngineUnavailableError, type EngineClient } from '../../engine/engine-client.js';
import type { RequestStream } from '../../engine/request-stream.js';
import type { EngineEvent, RequestImages, SamplingParams } from '../../engine/types.js';
import type { SequenceMetrics, ServerMetrics } from '../../observability/metrics.js';
import type { Ticket } from '../admission.js';
import type { CalibrationSelection } from '../calibration.js';
import { ApiError, clientGone, shutDownMidRequest, unavailable } from '../errors.js';
import { wasCutForNotReading } from '../transport/stalled.js';
import type { AbortCause, Lifecycle } from '../lifecycle.js';

export interface SequenceSpec {
  promptIds: number[];
  sampling: SamplingParams;
  images?: RequestImages;
}

export type OutputEvent = Exclude<EngineEvent, { type: 'error' }>;

export interface TaggedEvent {
  index: number;
  event: OutputEvent;
}

export interface RunDeps {
  engine: EngineClient;
  metrics: ServerMetrics;
  lifecycle: Lifecycle;
  retryAfterSeconds: number;
}

export interface RunOptions {
  sequences: readonly SequenceSpec[];
  calibration: CalibrationSelection;
  ticket: Ticket;
  /** performance.now() at the HTTP request's arrival. */
  arrivedAt: number;
  /** 0 = no deadline. */
  timeoutMs: number;
  reply: FastifyReply;
  /** Choices per prompt: `sequences` holds each prompt's n choices one after another. */
  choicesPerPrompt: number;
}

export class GenerationRun {
  private readonly controller = new AbortController();
  private readonly streams: RequestStream[] = [];
  private readonly sequenceMetrics: SequenceMetrics[];
  private readonly disposers: (() => void)[] = [];
  private engineError: ApiError | null = null;
  private disposed = false;

  constructor(
    private readonly deps: RunDeps,
    private readonly opts: RunOptions,
  ) {
    this.sequenceMetrics = opts.sequences.map((seq) => deps.metrics.startSequence(opts.arrivedAt, opts.calibration.ids, seq.sampling.maxTokens));
    // Each sequence's engine stream listens on this one signal, so n x prompts listeners are expected;
    // past Node's default of 10 it would warn of a leak on every large-n request.
    setMaxListeners(opts.sequences.length + 10, this.controller.signal);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get abortCause(): AbortCause | null {
    return this.controller.signal.aborted ? (this.controller.signal.reason as AbortCause) : null;
  }

  /** Submits every sequence. Throws 503 if the engine went down since admission. */
  start(): void {
    const { engine } = this.deps;
    const { reply, timeoutMs, arrivedAt, calibration } = this.opts;
    this.disposers.push(this.deps.lifecycle.track(this.controller));

    const onClose = () => {
      if (!reply.raw.writableFinished) this.abort(wasCutForNotReading(reply.raw) ? 'stalled' : 'disconnect');
    };
    reply.raw.on('close', onClose);
    this.disposers.push(() => reply.raw.off('close', onClose));
    // The client may have left while the prompt was being tokenized, before anyone listened.
    if (reply.raw.destroyed) onClose();

    if (timeoutMs > 0) {
      const timer = setTimeout(() => this.abort('timeout'), Math.max(0, timeoutMs - (performance.now() - arrivedAt)));
      this.disposers.push(() => clearTimeout(timer));
    }

    try {
      for (const seq of this.opts.sequences) {
        this.streams.push(
          engine.generate(
            {
              // Ids are ours, never the client's X-Request-Id, which need not be unique.
              id: randomUUID(),
              promptIds: seq.promptIds,
              sampling: seq.sampling,
              ...(seq.images ? { images: seq.images } : {}),
              calibration: calibration.configs,
              calibrationDetail: calibration.detail,
            },
            this.controller.signal,
          ),
        );
      }
    } catch (e) {
      this.abort('failed');
      if (e instanceof EngineUnavailableError) throw unavailable(`the model is not ready: ${e.message}`, this.deps.retryAfterSeconds);
      throw e;
    }
  }

  abort(cause: AbortCause): void {
    if (!this.controller.signal.aborted) this.controller.abort(cause);
  }

  /**
   * The sequences' events in arrival order. Error events end the run (the other sequences are
   * aborted) and are kept for `failure()`; finishes caused by an abort are not yielded.
   */
  async *events(): AsyncGenerator<TaggedEvent> {
    // One queue fed by every sequence's stream: each event costs O(1), however many sequences
    // (n × prompts) the request has.
    const queue: { index: number; event: EngineEvent }[] = [];
    let head = 0;
    let open = this.streams.length;
    let wake: (() => void) | null = null;
    this.streams.forEach(async (stream, index) => {
      try {
        for (let r = await stream.next(); !r.done; r = await stream.next()) {
          queue.push({ index, event: r.value });
          wake?.();
        }
      } finally {
        open--;
        wake?.();
      }
    });
    try {
      while (open > 0 || head < queue.length) {
        if (head === queue.length) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
          continue;
        }
        const { index, event } = queue[head++]!;
        this.opts.ticket.markStarted(index);
        if (event.type === 'error') {
          if (event.reason === 'internal') this.opts.reply.log.error({ sequence: index, engine: event.message }, 'engine failure');
          this.engineError ??= engineFailure(event.reason, event.message, this.deps.retryAfterSeconds);
          this.abort('failed');
          continue;
        }
        const metrics = this.sequenceMetrics[index]!;
        if (event.type === 'tokens' || event.type === 'prompt') metrics.prefilled(this.opts.sequences[index]!.promptIds.length);
        if (event.type === 'tokens') metrics.tokens(event.tokenIds.length);
        if (event.type === 'finish') {
          metrics.finish(event);
          if (event.reason === 'abort') continue;
        }
        yield { index, event };
      }
    } finally {
      // A consumer that stops early (a write failed, the generator was returned) still frees every slot.
      if (open > 0) this.abort('failed');
    }
  }


  /**
   * Why the run did not complete, as the error to answer with (a client that left or stopped reading
   * gets a 499 nobody sees, counted as aborted); null when it completed.
   */
  failure(): ApiError | null {
    if (this.engineError) return this.engineError;
    switch (this.abortCause) {
      case 'disconnect':
        return clientGone();
      case 'stalled':
        return clientGone(`the client read nothing for the write timeout (write_timeout); the generation was aborted`);
      case 'timeout':
        return new ApiError(408, `the request did not finish within the server's timeout of ${this.opts.timeoutMs / 1000} s (request_timeout); it was aborted`, {
          type: 'timeout_error',
          code: 'request_timeout',
          failure: 'timeout',
          headers: NO_RETRY,
        });
      case 'shutdown':
        return shutDownMidRequest(this.deps.retryAfterSeconds);
      case 'failed':
        return new ApiError(500, 'the request failed', { failure: 'internal' });
      default:
        return null;
    }
  }

  /**
   * Frees the engine sequences at once; the admission ticket only once the response's bytes are
   * gone (or the connection is), so that clients which do not read cannot pile up responses in
   * memory beyond what admission allows.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.streams.some((s) => !s.done)) this.abort('failed');
    // Only a request that succeeded counts its sequences as successes.
    if (this.failure() === null) {
      const n = this.opts.choicesPerPrompt;
      const groups = [];
      for (let i = 0; i < this.sequenceMetrics.length; i += n) groups.push(this.sequenceMetrics.slice(i, i + n));
      this.deps.metrics.commitRequest(groups);
    }
    for (const d of this.disposers.splice(0)) d();
    const res = this.opts.reply.raw;
    // Node marks a response destroyed when it emits 'close': after its last byte, or when cut.
    if (res.destroyed) this.opts.ticket.release();
    else res.once('close', () => this.opts.ticket.release());
  }
}

/**
 * OpenAI's SDKs retry 408 (three runs of the same generation by default); a generation that ran out
 * of time would only run out again. They honour `x-should-retry`.
 */
const NO_RETRY = { 'x-should-retry': 'false' };

function engineFailure(reason: string, message: string, retryAfterSeconds: number): ApiError {
  switch (reason) {
    case 'validation':
      return new ApiError(400, message, { code: 'invalid_request', failure: 'validation' });
    case 'timeout':
      return new ApiError(408, message, { type: 'timeout_error', code: 'request_timeout', failure: 'timeout', headers: NO_RETRY });
    case 'aborted':
      return new ApiError(503, message, { type: 'unavailable_error', code: 'aborted', failure: 'aborted', headers: { 'retry-after': String(retryAfterSeconds) } });
    default:
      // The worker died or a forward failed: the engine restarts itself, so a retry may well succeed.
      // The client learns what happened; the engine's own words (tensor names, ORT errors) go to the
      // log under the request id.
      return new ApiError(503, message.startsWith('engine worker exited')
        ? 'the engine worker crashed while running this request; it restarts by itself, so retry'
        : 'the engine failed while running this request (logged under its request id); retry', {
        type: 'server_error',
        code: 'engine_error',
        failure: 'internal',
        headers: { 'retry-after': String(retryAfterSeconds) },
      });
  }
}
