/**
 * What `npm run bench:scale` measures on both sides (attune's child process and llama.cpp's tools),
 * so the two sides run the same workload and report it in the same shape.
 */
export const DECODE_TOKENS = 32;
export const BATCH = 8;
export const PREFILL_TOKENS = 128;

/** One measurement, tokens/s. */
export interface Sample {
  decode1: number;
  batch8: number;
  prefill128: number;
}

/** llama.cpp's measurement taken right after attune's, under the same machine load. */
export interface LlamaSample extends Sample {
  /** Peak RSS of llama-bench, bytes (its model file is memory-mapped). */
  peakRss: number;
}

