import { z } from 'zod';
import { WEIGHT_FORMATS } from '../../models/onnx/weight-format.js';

/** Engine knobs. Defaults suit a 2-core CPU host (measured: README "Threads"). */
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
  /** Per calibrator set graphs; false: every step runs the graph with every calibrator's fragments. */
  plainFastPath: z.boolean().default(true),
  /** How linear layers' weights are stored and computed (models/onnx/weight-format.ts). */
  weights: z.enum(WEIGHT_FORMATS).default('f32'),
  /** Graphs (one per set of active calibrators) kept open at once, least recently used evicted. */
  maxGraphs: z.number().int().min(1).max(64).default(4),
  /** Where weight stores and compiled graphs are cached; default ATTUNE_COMPILED_CACHE or ~/.cache/attune/compiled. */
  compiledCacheDir: z.string().min(1).optional(),
});
export type EngineOptions = z.infer<typeof EngineOptionsSchema>;
export type EngineOptionsInput = z.input<typeof EngineOptionsSchema>;
