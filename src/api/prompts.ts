/**
 * `/v1/completions` prompts: a string, an array of token ids, or a batch (array) of either, as in
 * OpenAI's and vLLM's API. Strings are encoded with BOS, as vLLM does by default
 * (`add_special_tokens`). Shape problems are found before any tokenizing, so a malformed batch costs
 * nothing; token ids are checked against the model's vocabulary with the exact element path.
 */
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { ApiError, badRequest } from './errors.js';

export type RawPrompt = { kind: 'text'; text: string; param: string } | { kind: 'ids'; ids: number[]; param: string };

export interface Prompt {
  ids: number[];
  /** What `echo` returns: the text as sent, or the decoded ids. */
  text: string;
  param: string;
}

const SHAPE = 'prompt must be a string, an array of token ids, or an array of strings or token-id arrays';

/**
 * Cheap structural pass: how many prompts, and which are which. Sizes come before elements: a batch
 * longer than max_prompts, or a token-id prompt longer than the context, is refused before any of
 * its elements is looked at.
 */
export function splitPrompts(raw: unknown, maxPrompts: number, maxModelLen: number): RawPrompt[] {
  if (raw === undefined || raw === null) throw badRequest('prompt is required', 'prompt', 'missing_required_parameter');
  if (typeof raw === 'string') return [{ kind: 'text', text: raw, param: 'prompt' }];
  if (!Array.isArray(raw)) throw badRequest(SHAPE, 'prompt');
  if (raw.length === 0) throw badRequest('prompt must not be empty', 'prompt');
  if (typeof raw[0] === 'number') return [{ kind: 'ids', ids: tokenArray(raw, 'prompt', maxModelLen), param: 'prompt' }];
  if (raw.length > maxPrompts) throw badRequest(`at most ${maxPrompts} prompts in one request (max_prompts)`, 'prompt');
  return raw.map((p, i): RawPrompt => {
    const param = `prompt.${i}`;
    if (typeof p === 'string') return { kind: 'text', text: p, param };
    if (Array.isArray(p)) {
      if (p.length === 0) throw badRequest(`${param}: a token-id prompt must not be empty`, param);
      return { kind: 'ids', ids: tokenArray(p, param, maxModelLen), param };
    }
    throw badRequest(`${param}: ${SHAPE}`, param);
  });
}

function tokenArray(a: unknown[], param: string, maxModelLen: number): number[] {
  if (a.length > maxModelLen) {
    throw new ApiError(400, `${param}: the prompt is ${a.length} tokens, more than the model's context of ${maxModelLen} tokens`, { param, code: 'context_length_exceeded' });
  }
  a.forEach((t, j) => {
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw badRequest(`${param}.${j}: expected a token id (a non-negative integer)`, `${param}.${j}`);
  });
  return a as number[];
}

export interface EncodeLimits {
  vocabSize: number;
  maxPromptChars: number;
  /** Prepend BOS to text prompts (vLLM's add_special_tokens, default true). */
  addBos?: boolean;
}

/** Tokenizes (or checks) each prompt. */
export function encodePrompts(raw: readonly RawPrompt[], tokenizer: Tokenizer, limits: EncodeLimits): Prompt[] {
  return raw.map((p) => {
    if (p.kind === 'text') {
      checkPromptChars(p.text.length, p.param, limits.maxPromptChars);
      const ids = tokenizer.encode(p.text, { addBos: limits.addBos ?? true });
      if (ids.length === 0) throw badRequest(`${p.param}: the prompt has no tokens (empty text without add_special_tokens)`, p.param);
      return { ids, text: p.text, param: p.param };
    }
    p.ids.forEach((t, j) => {
      if (t >= limits.vocabSize) {
        throw badRequest(`${p.param}.${j}: token id ${t} is outside the vocabulary [0, ${limits.vocabSize})`, `${p.param}.${j}`, 'invalid_token_id');
      }
    });
    return { ids: p.ids, text: tokenizer.decode(p.ids, { skipSpecial: true }), param: p.param };
  });
}

/**
 * An LVLM's image token stands for an image's features; /v1/completions has no images to fill it,
 * so a prompt that holds one (as an id, or text the tokenizer maps to it) is refused.
 */
export function refuseImageTokens(prompts: readonly Prompt[], imageTokenId: number, raw: readonly RawPrompt[]): void {
  prompts.forEach((p, i) => {
    const j = p.ids.indexOf(imageTokenId);
    if (j < 0) return;
    const param = raw[i]!.kind === 'ids' ? `${p.param}.${j}` : p.param;
    throw badRequest(`${param}: token id ${imageTokenId} is the model's image token; send images as image_url parts to /v1/chat/completions`, param, 'image_token_without_image');
  });
}

/** A prompt longer than this cannot fit the context anyway; refusing it early bounds tokenizer work. */
export function checkPromptChars(chars: number, param: string, maxPromptChars: number): void {
  if (chars > maxPromptChars) {
    throw new ApiError(400, `${param}: the prompt has ${chars} characters, more than the limit of ${maxPromptChars} (max_prompt_chars)`, {
      param,
      code: 'prompt_too_long',
    });
  }
}
