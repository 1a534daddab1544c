/**
 * From validated body fields to the engine's SamplingParams, plus the checks that need the model:
 * token ids within the vocabulary, and prompt + max_tokens within the context. A prompt that does
 * not fit is refused with 400, never truncated.
 */
import type { SamplingParams } from '../engine/types.js';
import { ApiError, badRequest } from './errors.js';
import type { SamplingFields } from './schemas/common.js';

export interface ModelShape {
  maxModelLen: number;
  vocabSize: number;
}

/**
 * The generation budget for one prompt: `requested` when it fits, else a 400; by default the rest
 * of the context (vLLM's behaviour), which must leave room for at least one token.
 */
export function resolveMaxTokens(promptTokens: number, promptParam: string, requested: number | undefined, maxTokensParam: string, model: ModelShape): number {
  const { maxModelLen } = model;
  if (promptTokens > maxModelLen) {
    throw contextError(`${promptParam}: the prompt is ${promptTokens} tokens, more than the model's context of ${maxModelLen} tokens`, promptParam);
  }
  const room = maxModelLen - promptTokens;
  if (requested === undefined) {
    if (room === 0) throw contextError(`${promptParam}: the prompt is ${promptTokens} tokens and fills the model's context of ${maxModelLen} tokens; nothing can be generated`, promptParam);
    return room;
  }
  if (requested > room) {
    throw contextError(
      `${maxTokensParam}: ${requested} tokens plus the prompt's ${promptTokens} exceed the model's context of ${maxModelLen} tokens; at most ${room} can be generated`,
      maxTokensParam,
    );
  }
  return requested;
}

function contextError(message: string, param: string): ApiError {
  return new ApiError(400, message, { param, code: 'context_length_exceeded' });
}

export interface SamplingExtras {
  maxTokens: number;
  logprobs: number | null;
  promptLogprobs: number | null;
}

export function buildSampling(f: SamplingFields, extras: SamplingExtras, model: ModelShape): SamplingParams {
  const minTokens = f.min_tokens ?? 0;
  if (minTokens > extras.maxTokens) {
    throw badRequest(`min_tokens: ${minTokens} is more than max_tokens (${extras.maxTokens}); min_tokens must be at most max_tokens`, 'min_tokens');
  }
  return {
    temperature: f.temperature ?? 1,
    topP: f.top_p ?? 1,
    topK: f.top_k === undefined || f.top_k <= 0 ? 0 : f.top_k,
    minP: f.min_p ?? 0,
    repetitionPenalty: f.repetition_penalty ?? 1,
    presencePenalty: f.presence_penalty ?? 0,
    frequencyPenalty: f.frequency_penalty ?? 0,
    logitBias: logitBias(f.logit_bias, model.vocabSize),
    seed: f.seed,
    maxTokens: extras.maxTokens,
    stopTokenIds: stopTokenIds(f.stop_token_ids, model.vocabSize),
    stopStrings: f.stop === undefined ? [] : typeof f.stop === 'string' ? [f.stop] : f.stop,
    ignoreEos: f.ignore_eos ?? false,
    logprobs: extras.logprobs,
    promptLogprobs: extras.promptLogprobs,
    includeStopStrInOutput: f.include_stop_str_in_output ?? false,
    minTokens,
  };
}

function logitBias(bias: Record<string, number> | undefined, vocabSize: number): Record<number, number> {
  const out: Record<number, number> = {};
  for (const [key, value] of Object.entries(bias ?? {})) {
    const param = `logit_bias.${key}`;
    if (!/^\d+$/.test(key)) throw badRequest(`${param}: keys must be token ids (non-negative integers)`, param, 'invalid_token_id');
    const id = Number(key);
    if (id >= vocabSize) throw badRequest(`${param}: token id ${id} is outside the vocabulary [0, ${vocabSize})`, param, 'invalid_token_id');
    out[id] = value;
  }
  return out;
}

function stopTokenIds(ids: number[] | undefined, vocabSize: number): number[] {
  (ids ?? []).forEach((id, i) => {
    if (id >= vocabSize) throw badRequest(`stop_token_ids.${i}: token id ${id} is outside the vocabulary [0, ${vocabSize})`, `stop_token_ids.${i}`, 'invalid_token_id');
  });
  return ids ?? [];
}
