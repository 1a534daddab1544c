import type { LogitsProcessor } from './logits-processor.js';
import type { RowTokenHistory } from './token-history.js';

/**
 * OpenAI presence and frequency penalties, over generated tokens only (the prompt is not penalised):
 * logit -= frequency * count + presence * [count > 0].
 */
export class PresenceFrequencyPenaltyProcessor implements LogitsProcessor {
  constructor(
    readonly presence: number,
    readonly frequency: number,
  ) {
    if (!Number.isFinite(presence) || !Number.isFinite(frequency)) throw new RangeError('presence and frequency penalties must be finite');
  }

  process(state: RowTokenHistory, logits: Float32Array): void {
    const presence = this.presence;
    const frequency = this.frequency;
    const n = logits.length;
    // Every entry in outputCounts has count >= 1, so the presence term applies unconditionally.
    state.outputCounts.forEach((count, id) => {
      if (id < n) logits[id] = logits[id]! - (frequency * count + presence);
    });
  }
}
