/**
 * The tail both generation routes share once they know their sequences: reserve the prompt tokens,
 * log the request (prompts go through the logger's redaction), and answer as JSON or SSE.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { childSeeds } from '../../engine/sampling/child-seeds.js';
import type { Ticket } from '../admission.js';
import { badRequest } from '../errors.js';
import type { CalibrationSelection } from '../calibration.js';
import type { ServerContext } from '../context.js';
import type { Responder } from './responder.js';
import { respondJson, respondStream } from './respond.js';
import { GenerationRun, type SequenceSpec } from './run.js';

export interface Execution {
  request: FastifyRequest;
  reply: FastifyReply;
  arrivedAt: number;
  ticket: Ticket;
  sequences: SequenceSpec[];
  calibration: CalibrationSelection;
  responder: Responder;
  stream: boolean;
  includeUsage: boolean;
  /** Logged under `prompt`, which the logger redacts unless log_prompts is on. */
  promptForLog: unknown;
  /** n: `sequences` holds each prompt's n choices one after another. */
  choicesPerPrompt: number;
}

export async function execute(ctx: ServerContext, x: Execution): Promise<unknown> {
  x.ticket.reserveTokens(x.sequences.map((s) => s.promptIds.length));
  const first = x.sequences[0]!.sampling;
  x.request.log.info(
    {
      prompt: x.promptForLog,
      sequences: x.sequences.length,
      promptTokens: x.sequences.map((s) => s.promptIds.length),
      maxTokens: first.maxTokens,
      temperature: first.temperature,
      stream: x.stream,
      calibration: x.calibration.ids,
    },
    'generation request',
  );
  const run = new GenerationRun(
    { engine: ctx.engine, metrics: ctx.metrics, lifecycle: ctx.lifecycle, retryAfterSeconds: ctx.config.queue.retryAfterSeconds },
    {
      sequences: x.sequences,
      calibration: x.calibration,
      ticket: x.ticket,
      arrivedAt: x.arrivedAt,
      timeoutMs: ctx.config.requestTimeoutSeconds * 1000,
      reply: x.reply,
      choicesPerPrompt: x.choicesPerPrompt,
    },
  );
  if (!x.stream) return respondJson(run, x.responder);
  respondStream(run, x.responder, { reply: x.reply, keepAliveMs: ctx.config.sseKeepAliveSeconds * 1000, includeUsage: x.includeUsage, metrics: ctx.metrics });
  return x.reply;
}

/** `n` copies of one sequence; a seeded request's choices get distinct derived seeds (child-seeds.ts). */
export function fanOut(seq: SequenceSpec, n: number): SequenceSpec[] {
  const seeds = seq.sampling.seed === undefined ? null : childSeeds(seq.sampling.seed, n);
  return Array.from({ length: n }, (_, i) => ({
    ...seq,
    promptIds: seq.promptIds,
    sampling: { ...seq.sampling, seed: seeds ? seeds[i] : undefined },
  }));
}

/**
 * `stream` and the fields that depend on it. Like vLLM: options on a non-streaming request are a
 * client mistake, and prompt logprobs come only in a whole response (a stream has no place for them).
 */
export function streamSettings(body: {
  stream?: boolean | undefined;
  stream_options?: { include_usage?: boolean | undefined } | undefined;
  prompt_logprobs: number | null;
}): { stream: boolean; includeUsage: boolean } {
  const stream = body.stream ?? false;
  if (body.stream_options !== undefined && !stream) throw badRequest('stream_options is only allowed when stream is true', 'stream_options');
  if (body.prompt_logprobs !== null && stream) throw badRequest('prompt_logprobs is not available when stream is true', 'prompt_logprobs');
  return { stream, includeUsage: body.stream_options?.include_usage ?? false };
}

/** `<prefix>-<request_id>` when the client named the request (vLLM's request_id), else a random id. */
export function responseId(prefix: string, requestId?: string): string {
  return `${prefix}-${requestId ?? randomUUID().replace(/-/g, '')}`;
}
