/**
 * vLLM's `prompt_logprobs` field: one entry per prompt token, null for the first (nothing predicts
 * it), else `{"<token id>": {logprob, rank, decoded_token}}` holding the prompt token itself and the
 * `topN` most likely alternatives. Completions put it on each choice, chat at the top level.
 */
import type { TokenLogprobs } from '../../engine/types.js';
import type { TokenText } from './token-text.js';

export interface RankedLogprob {
  logprob: number;
  /** 1-based rank in the vocabulary; tokens that tie share one. */
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
    // The engine may have computed more alternatives than this request asked for (echo + logprobs).
    let rank = 0;
    entry.top.slice(0, topN).forEach((t, j, top) => {
      if (j === 0 || t.logprob < top[j - 1]!.logprob) rank = j + 1;
      if (!(t.id in out)) out[t.id] = { logprob: t.logprob, rank, decoded_token: tokenText.label(t.id, asTokenIds) };
    });
    return out;
  });
}
