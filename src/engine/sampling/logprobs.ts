/**
 * Logprobs as vLLM reports them by default (`logprobs_mode = "raw_logprobs"`): a log-softmax over the
 * model's raw logits, before logit bias, penalties, calibrator processors, temperature and truncation.
 * They describe what the model predicted, not the (possibly truncated) distribution a token was drawn
 * from, so a sampled token can carry a logprob below every listed alternative's, and a greedy request
 * and a temperature-1.5 request report the same numbers for the same context.
 */
import type { TokenLogprob, TokenLogprobs } from '../types.js';

/** OpenAI's cap on `top_logprobs`, and vLLM's default `--max-logprobs`. */
export const MAX_TOP_LOGPROBS = 20;

// Shared because rows are handled one at a time per thread and topN is tiny.
const topIds = new Int32Array(MAX_TOP_LOGPROBS);
const topVals = new Float64Array(MAX_TOP_LOGPROBS);

/**
 * The logprob of `chosenId` and the `topN` most likely tokens (most likely first, lower id first on
 * ties), from one row of raw logits. Two passes and no sort: a bounded insertion list for the top
 * entries, then a max-shifted sum of exponentials accumulated in float64, counting on the way the
 * tokens at least as likely as the chosen one for its rank.
 */
export function computeTokenLogprobs(logits: Float32Array, chosenId: number, topN: number): TokenLogprobs {
  const n = logits.length;
  if (!(Number.isInteger(topN) && topN >= 0 && topN <= MAX_TOP_LOGPROBS)) {
    throw new RangeError(`topN must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${topN}`);
  }
  if (!(Number.isInteger(chosenId) && chosenId >= 0 && chosenId < n)) throw new RangeError(`token id ${chosenId} is outside the vocabulary`);

  let max = -Infinity;
  let filled = 0;
  // While the list is full, anything not strictly above its last value cannot enter it, so the
  // common case is one comparison per token.
  let floor = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = logits[i]!;
    if (v > max) max = v;
    if (topN === 0) continue;
    if (filled < topN ? v === v : v > floor) {
      let p = filled < topN ? filled++ : topN - 1;
      // Strictly-greater shifting keeps an earlier (lower) id ahead of a later one with the same value.
      while (p > 0 && topVals[p - 1]! < v) {
        topVals[p] = topVals[p - 1]!;
        topIds[p] = topIds[p - 1]!;
        p--;
      }
      topVals[p] = v;
      topIds[p] = i;
      if (filled === topN) floor = topVals[topN - 1]!;
    }
  }
  if (!Number.isFinite(max)) throw new RangeError(`cannot compute logprobs: the largest logit is ${max}`);

  const chosen = logits[chosenId]!;
  let sum = 0;
  let atLeast = 0;
  for (let i = 0; i < n; i++) {
    const v = logits[i]!;
    sum += Math.exp(v - max);
    if (v >= chosen) atLeast++;
  }
  const logZ = max + Math.log(sum);

  const top: TokenLogprob[] = new Array(filled);
  for (let j = 0; j < filled; j++) top[j] = { id: topIds[j]!, logprob: topVals[j]! - logZ };
  return { logprob: chosen - logZ, rank: atLeast, top };
}
