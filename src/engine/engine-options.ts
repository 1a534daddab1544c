import { z } from 'zod';

/** Engine knobs. Defaults suit a 2-core CPU host and a small model. */
export const EngineOptionsSchema = z.object({
  /** Rows decoded together (KV slots). */
  maxBatch: z.number().int().min(1).max(256).default(16),
  /** Longest sequence (prompt + generated) per row; clipped to the model's own limit. */
  maxModelLen: z.number().int().min(16).optional(),
  /** Prompt tokens per prefill chunk, so a long prompt does not stall streaming rows. */
  prefillChunk: z.number().int().min(1).default(256),
  /** Padded prompt tokens (rows x longest) in one batched prefill of fresh prompts. */
  maxPrefillTokensPerStep: z.number().int().min(16).default(1024),
  /** ORT intra-op threads in the engine worker. */
  threads: z.number().int().min(1).max(64).default(1),
  /** Execution providers to try before CPU, e.g. ["cuda"]. */
  providers: z.array(z.string()).default([]),
  /** Also compile a graph without calibrator fragments, used for steps where no row is calibrated. */
  plainFastPath: z.boolean().default(true),
});
export type EngineOptions = z.infer<typeof EngineOptionsSchema>;
export type EngineOptionsInput = z.input<typeof EngineOptionsSchema>;
