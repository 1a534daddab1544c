/**
 * What differs between /v1/completions and /v1/chat/completions is only the shape of choices and
 * chunks; a Responder owns that shape. The same event calls serve both modes: in streaming mode they
 * return chunks to send, otherwise they accumulate and `final` builds the body.
 */
import type { OutputEvent } from './run.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ResponseMeta {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

export interface Responder {
  /** Streaming: chunks for when the stream opens (chat's role deltas, an echoed prompt). */
  openChunks(): unknown[];
  /** Streaming: the chunks this event produces. Non-streaming: accumulate, return []. */
  onEvent(index: number, event: OutputEvent): unknown[];
  /** Streaming with include_usage: the last chunk, with empty choices. */
  usageChunk(): unknown;
  /** Non-streaming: the whole body. */
  final(): unknown;
}

type FinishEvent = Extract<OutputEvent, { type: 'finish' }>;

/** Per-choice end state common to both endpoints. */
export interface ChoiceEnd {
  finish_reason: 'stop' | 'length';
  /** vLLM's field: the stop string or stop token id that ended the choice, else null. */
  stop_reason: string | number | null;
  calibration: Record<string, unknown>;
  completionTokens: number;
}

export function choiceEnd(e: FinishEvent): ChoiceEnd {
  return {
    finish_reason: e.reason === 'length' ? 'length' : 'stop',
    stop_reason: e.stoppedBy,
    calibration: e.calibration,
    completionTokens: e.completionTokens,
  };
}

/**
 * The response's top-level `calibration`: calibrator id → its report for a one-choice response, or
 * → the list of reports by choice index when there are several choices (n > 1, or several prompts;
 * completions number choices prompt by prompt, prompt i's choice j at i·n + j). A stream carries each
 * choice's own `{id: report}` in that choice's final chunk. Every requested calibrator appears: one
 * turned off (`false`) or set to change nothing reports `{"active": false}`.
 */
export function topLevelCalibration(ends: readonly (ChoiceEnd | undefined)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (ends.length === 1) return { ...(ends[0]?.calibration ?? {}) };
  const ids = new Set(ends.flatMap((e) => Object.keys(e?.calibration ?? {})));
  for (const id of ids) out[id] = ends.map((e) => e?.calibration[id] ?? null);
  return out;
}

export function makeUsage(promptTokens: number, ends: readonly (ChoiceEnd | undefined)[]): Usage {
  const completion = ends.reduce((a, e) => a + (e?.completionTokens ?? 0), 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

export interface ResponderOptions {
  meta: ResponseMeta;
  choices: number;
  /** Distinct prompt tokens (n choices of one prompt count it once, as OpenAI does). */
  promptTokens: number;
  streaming: boolean;
  /** The request had a calibration field: the response then carries a calibration object. */
  calibrationRequested: boolean;
  /** vLLM's return_token_ids: prompt token ids and each choice's generated ids in the response. */
  returnTokenIds: boolean;
  /** Calibrators the request turned off by name; each choice reports them as `{"active": false}`. */
  calibrationOff?: readonly string[];
}

/** Bookkeeping both responders share: per-choice ends, usage, and the response envelope. */
export abstract class BaseResponder implements Responder {
  protected readonly ends: (ChoiceEnd | undefined)[];
  /** Generated ids per choice, kept only for return_token_ids. */
  protected readonly generated: number[][];

  constructor(protected readonly opts: ResponderOptions) {
    this.ends = new Array<ChoiceEnd | undefined>(opts.choices);
    this.generated = Array.from({ length: opts.returnTokenIds ? opts.choices : 0 }, () => []);
  }

  /** Records a choice's new token ids; returns `{ token_ids }` for a stream chunk when they are asked for. */
  protected tokenIdsDelta(index: number, ids: readonly number[]): { token_ids?: number[] } {
    if (!this.opts.returnTokenIds) return {};
    this.generated[index]!.push(...ids);
    return { token_ids: [...ids] };
  }

  /** `{ token_ids }` of a whole choice, when asked for. */
  protected tokenIdsOf(index: number): { token_ids?: number[] } {
    return this.opts.returnTokenIds ? { token_ids: this.generated[index]! } : {};
  }

  abstract openChunks(): unknown[];
  abstract onEvent(index: number, event: OutputEvent): unknown[];
  abstract final(): unknown;

  protected end(index: number, e: FinishEvent): ChoiceEnd {
    const end = choiceEnd(e);
    const off = this.opts.calibrationOff ?? [];
    if (off.length) end.calibration = { ...Object.fromEntries(off.map((id) => [id, { active: false }])), ...end.calibration };
    this.ends[index] = end;
    return end;
  }

  protected usage(): Usage {
    return makeUsage(this.opts.promptTokens, this.ends);
  }

  /** `calibration` for a body or a final chunk, when the request asked for calibration. */
  protected calibrationField(reports: Record<string, unknown>): { calibration?: Record<string, unknown> } {
    return this.opts.calibrationRequested ? { calibration: reports } : {};
  }

  protected envelope(object: string): ResponseMeta & { object: string } {
    const { id, created, model } = this.opts.meta;
    return { id, object, created, model };
  }

  abstract usageChunk(): unknown;
}
