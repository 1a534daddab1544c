import type { RowTokenHistory } from './token-history.js';

/**
 * One step of logits shaping for one row, in the manner of HF transformers' LogitsProcessor. It mutates
 * `logits` (one row, vocabulary-sized) in place so that a chain of processors allocates nothing per
 * step. Processors run before temperature and truncation, so anything they do can change the greedy
 * choice.
 */
export interface LogitsProcessor {
  process(state: RowTokenHistory, logits: Float32Array): void;
}
