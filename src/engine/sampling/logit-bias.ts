import type { LogitsProcessor } from './logits-processor.js';
import type { RowTokenHistory } from './token-history.js';

/** OpenAI `logit_bias`: a constant added to chosen tokens' logits at every step. */
export class LogitBiasProcessor implements LogitsProcessor {
  private readonly ids: Int32Array;
  private readonly bias: Float64Array;

  constructor(logitBias: Readonly<Record<number, number>>) {
    // Record keys arrive as strings; parsing them once here keeps the per-step loop on typed arrays.
    const entries: [number, number][] = [];
    for (const [key, value] of Object.entries(logitBias)) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0) throw new RangeError(`logit bias: token id ${key} is not a non-negative integer`);
      if (!Number.isFinite(value)) throw new RangeError(`logit bias for token ${key} is not finite`);
      if (value !== 0) entries.push([id, value]);
    }
    this.ids = Int32Array.from(entries, (e) => e[0]);
    this.bias = Float64Array.from(entries, (e) => e[1]);
  }

  /** Number of tokens with a non-zero bias. */
  get size(): number {
    return this.ids.length;
  }

  process(_state: RowTokenHistory, logits: Float32Array): void {
    const n = logits.length;
    for (let j = 0; j < this.ids.length; j++) {
      const id = this.ids[j]!;
      // Ids beyond the vocabulary are the edge validator's job to reject; here they must not corrupt memory.
      if (id < n) logits[id] = logits[id]! + this.bias[j]!;
    }
  }
}

/** True when the map holds at least one non-zero bias (so a processor would do something). */
export function hasLogitBias(logitBias: Readonly<Record<number, number>>): boolean {
  return Object.values(logitBias).some((v) => v !== 0);
}
