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
import type { GeometryInput } from './step-geometry.js';

export const HOOK_KINDS = ['hook_resid_pre', 'attn.hook_attn_scores', 'attn.hook_pattern', 'attn.hook_z'] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

export const hookName = (layer: number, kind: HookKind): string => `blocks.${layer}.${kind}`;

export { DIM } from './dims.js';

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
  /**
   * Every element's value when a row takes its slot (`overwrite` states only: positional states are
   * only read where written). Rows that never write the state (their owner is off) keep it, so it is
   * the owner's identity. Default 0.
   */
  initial?: number;
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

/**
 * A graph output computed from a hook's tensors and delivered to its owner after each call: read
 * only, never fed back (e.g. a head's output at the last prompt row, the CLS row of an attention map).
 */
export interface TapSpec {
  owner: string;
  name: string;
  /** `tap.<owner>.<name>` */
  outputName: string;
  /** Dims including the leading batch axis. */
  dims: Dim[];
}

export const tapOutputName = (owner: string, name: string): string => `tap.${owner}.${name}`;

export interface FragmentContext {
  readonly g: GraphBuilder;
  readonly config: DecoderConfig;
  readonly layer: number;
  readonly hook: string;
  readonly owner: string;
  /** The hook tensor as the graph computed it, before any fragment at this hook point rewrote it. */
  readonly original: Value;
  /**
   * Scratch shared by this owner's fragments at every hook of this layer, in forward order (e.g. a
   * value computed at `hook_resid_pre` and read at `attn.hook_pattern`).
   */
  readonly local: Map<string, Value>;
  /**
   * Declares (once per graph; later calls return the same value) a per-row control input
   * `[batch, ...dims]`. `identity` is what rows with this calibrator off are fed.
   */
  rowInput(name: string, dtype: DType, dims: Dim[], identity: number): Value;
  /**
   * Declares a per-row state; returns its current value and a setter for the updated value. An
   * `overwrite` state may start at `initial` (default 0) in a new slot, e.g. 1 for a gain.
   */
  rowState(name: string, dims: RowStateSpec['dims'], update: RowStateSpec['update'], initial?: number): { value: Value; setNext(next: Value): void };
  /** Step geometry (step-geometry.ts), added to the graph's inputs on first use. */
  geometry(which: GeometryInput): Value;
  /** Declares a graph output `tap.<owner>.<name>` (`[batch, ...dims]`), delivered to the owner per row. */
  tap(name: string, value: Value, dims: Dim[]): void;
  /** A value built once per graph and reused by every layer (per-step constants, shapes). */
  shared(key: string, make: () => Value): Value;
}

/**
 * A calibrator's contribution at one hook kind. `build` receives the hook tensor (as rewritten by
 * the fragments before it; `ctx.original` is the untouched one) and returns the tensor that
 * downstream ops consume instead. Fragments at one hook run in registry order (calibrators/index.ts),
 * never in the order a client listed calibrators. Off rows must get their values back exactly (a Where,
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
