import type { LogitsProcessor } from './logits-processor.js';
import type { RowTokenHistory } from './token-history.js';

/**
 * vLLM's min_tokens: until `minTokens` tokens have been generated, the stop tokens (the model's EOS
 * unless ignore_eos, and the request's stop_token_ids) cannot be sampled.
 */
export class MinTokensProcessor implements LogitsProcessor {
  private readonly ids: Int32Array;

  constructor(
    private readonly minTokens: number,
    stopIds: Iterable<number>,
  ) {
    this.ids = Int32Array.from(new Set(stopIds));
  }

  process(state: RowTokenHistory, logits: Float32Array): void {
    if (state.outputIds.length >= this.minTokens) return;
    for (const id of this.ids) if (id < logits.length) logits[id] = -Infinity;
  }
}
