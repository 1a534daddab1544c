import type { LogitsProcessor } from './logits-processor.js';
import type { RowTokenHistory } from './token-history.js';

/**
 * HF/vLLM repetition penalty over every token already in the prompt or the output. Dividing positive
 * and multiplying negative logits (rather than subtracting) makes a penalty > 1 always lower the logit,
 * whatever its sign.
 */
export class RepetitionPenaltyProcessor implements LogitsProcessor {
  constructor(readonly penalty: number) {
    if (!(Number.isFinite(penalty) && penalty > 0)) throw new RangeError(`repetition penalty must be finite and > 0, got ${penalty}`);
  }

  process(state: RowTokenHistory, logits: Float32Array): void {
    const p = this.penalty;
    const n = logits.length;
    // forEach rather than for-of: it does not allocate an iterator result per entry on the hot path.
    state.seenIds.forEach((id) => {
      if (id >= n) return;
      const v = logits[id]!;
      logits[id] = v > 0 ? v / p : v * p;
    });
  }
}
