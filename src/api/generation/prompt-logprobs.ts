/**
 * vLLM's `prompt_logprobs` field: one entry per prompt token, null for the first (nothing predicts
 * it), else `{"<token id>": {logprob, rank, decoded_token}}` holding the prompt token itself and the
 * `topN` most likely alternatives. Completions put it on each choice, chat at the top level. The keys
 * are token ids, which JSON objects built in JavaScript list in ascending order: clients find the
 * prompt token by its id, not by position.
 */
import type { TokenLogprobs } from '../../engine/types.js';
import type { TokenText } from './token-text.js';

export interface RankedLogprob {
  logprob: number;
  /** 1-based: an alternative's place in the list; the prompt token's count of tokens at least as likely. */
  rank: number;
  decoded_token: string;
}

export type PromptLogprobs = (Record<string, RankedLogprob> | null)[];

export function promptLogprobs(
  promptIds: readonly number[],
  entries: readonly (TokenLogprobs | null)[],
  topN: number,
  tokenText: TokenText,
  asTokenIds: boolean,
): PromptLogprobs {
  return promptIds.map((id, k) => {
    const entry = entries[k] ?? null;
    if (!entry) return null;
    const out: Record<string, RankedLogprob> = {};
    out[id] = { logprob: entry.logprob, rank: entry.rank, decoded_token: tokenText.label(id, asTokenIds) };
    // As vLLM: alternatives are ranked by their place in the list, and the prompt token, when it is
    // one of them, takes that place. The engine may have computed more than asked (echo + logprobs).
    entry.top.slice(0, topN).forEach((t, j) => {
      out[t.id] = { logprob: t.logprob, rank: j + 1, decoded_token: tokenText.label(t.id, asTokenIds) };
    });
    return out;
  });
}
