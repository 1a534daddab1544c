/**
 * Hook points and the compile-time registration API through which calibrators add graph fragments.
 *
 * Names follow TransformerLens. In attention hooks the key axis is laid out as
 * `[past slots 0..C-1 | the T new tokens]` (C = the KV capacity fed this step, possibly 0): the graph
 * never copies the cache to append new keys. `rows.key_positions` maps each key to its sequence
 * position (or -1 when the slot is empty), so fragments that care about positions stay layout-agnostic.
 */
import type { DType, Dim, GraphBuilder, Value } from '../onnx/graph-builder.js';
import type { DecoderConfig } from '../checkpoint/decoder-weights.js';

export const HOOK_KINDS = ['hook_resid_pre', 'attn.hook_attn_scores', 'attn.hook_pattern', 'attn.hook_z'] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

export const hookName = (layer: number, kind: HookKind): string => `blocks.${layer}.${kind}`;

/** Symbolic dims of the decoder graph; per-row inputs and states are declared in these terms. */
export const DIM = {
  batch: 'batch',
  queries: 'new_tokens',
  past: 'past_capacity',
  keys: 'total_keys',
  logitRows: 'logit_rows',
} as const;

/** The marker for a state's sequence-position axis. */
export const KEYS_AXIS = 'keys';

/**
 * Per-row state carried across steps, kept by the engine in fixed-capacity slot buffers.
 * - `append`: the graph outputs only the T new positions (the KV cache).
 * - `replace`: the graph outputs all C + T keys; past positions are replaced, new ones appended
 *   (e.g. running attention column sums).
 * - `overwrite`: no position axis; the output replaces the row's state.
 */
export interface RowStateSpec {
  name: string;
  /** The graph output holding the update. */
  outputName: string;
  /** Per-row dims (batch excluded), with KEYS_AXIS marking the position axis when there is one. */
  dims: (number | typeof KEYS_AXIS)[];
  update: 'append' | 'replace' | 'overwrite';
  /** Who declared it: 'decoder' for the KV cache, else a calibrator id. */
  owner: string;
}

/** A per-row control input, always `[batch, ...dims]`, fed by its owner every step. */
export interface RowInputSpec {
  name: string;
  dtype: DType;
  dims: Dim[];
  owner: string;
  /** The value every element takes in rows where the owner is off. */
  identity: number;
}

/** Step geometry inputs that fragments may ask for; the engine feeds whichever the graph has. */
export const GEOMETRY_INPUTS = {
  /** [batch, new_tokens] f32: 1 for real query rows, 0 for padding. */
  queryValid: 'rows.query_valid',
  /** [batch, total_keys] f32: sequence position of each key, -1 for empty or padded slots. */
  keyPositions: 'rows.key_positions',
  /** [batch] f32: tokens in the row's sequence after this step (past + real new tokens). */
  seqLens: 'rows.seq_lens',
} as const;
export type GeometryInput = keyof typeof GEOMETRY_INPUTS;

export interface FragmentContext {
  readonly g: GraphBuilder;
  readonly config: DecoderConfig;
  readonly layer: number;
  readonly hook: string;
  readonly owner: string;
  /**
   * Declares (once per graph; later calls return the same value) a per-row control input
   * `[batch, ...dims]`. `identity` is what rows with this calibrator off are fed.
   */
  rowInput(name: string, dtype: DType, dims: Dim[], identity: number): Value;
  /** Declares a per-row state; returns its current value and a setter for the updated value. */
  rowState(name: string, dims: RowStateSpec['dims'], update: RowStateSpec['update']): { value: Value; setNext(next: Value): void };
  /** Step geometry, added to the graph's inputs on first use. */
  geometry(which: GeometryInput): Value;
  /** A value built once per graph and reused by every layer (per-step constants, shapes). */
  shared(key: string, make: () => Value): Value;
}

/**
 * A calibrator's contribution at one hook kind. `build` receives the hook tensor and returns the
 * tensor that downstream ops consume instead. Off rows must get their values back exactly (a Where,
 * or a gain of exactly 1 plus an exact 0), not through arithmetic that only approximately cancels
 * (e.g. renormalising), so that a row with the calibrator off is bit-identical to the plain graph.
 */
export interface HookFragment {
  owner: string;
  hook: HookKind;
  /** Restrict to some layers; default all. */
  layers?: (layer: number, config: DecoderConfig) => boolean;
  build(x: Value, ctx: FragmentContext): Value;
}
