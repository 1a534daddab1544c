/**
 * Step geometry: per-row facts about one engine step that fragments may read (which query rows are
 * real, where each key sits in its sequence, which keys and queries are image tokens, …). It is one
 * table: each entry has its graph input name, its dtype and dims, and the function that fills it
 * from a step's rows, side by side, so adding an entry is one place. The compiler adds an entry to a
 * graph's inputs only when a fragment asks for it; the engine fills whichever inputs the graph has.
 *
 * Key layout: `[C past slots | T new tokens]`; past slot j holds position j (filled when j < past);
 * new key t holds position past + t (real when t < newTokens).
 */
import type { DType, Dim } from '../onnx/graph-builder.js';
import { DIM } from './dims.js';

/** An image's placeholder tokens in a prompt: `length` positions from `start`, image `image` (0-based). */
export interface ImageSpan {
  image: number;
  start: number;
  length: number;
}

/** The prompt with every image span cut out, positions renumbered: what a "no image" sequence sees. */
export function withoutImages(promptIds: readonly number[], spans: readonly ImageSpan[], markers: ReadonlySet<number> = new Set()): number[] {
  const cut = new Set<number>();
  for (const s of spans) for (let p = s.start; p < s.start + s.length; p++) cut.add(p);
  return promptIds.filter((id, p) => !cut.has(p) && !markers.has(id));
}

/** One row of a step, as geometry needs it. */
export interface GeometryRow {
  /** Positions already in the cache. */
  past: number;
  /** Real new tokens this step (≤ the padded count). */
  newTokens: number;
  /** The row's image placeholder spans in sequence positions (empty for text-only rows). */
  images: readonly ImageSpan[];
}

export interface GeometryShape {
  rows: readonly GeometryRow[];
  /** Padded new tokens per row (T). */
  newTokens: number;
  /** Past capacity fed (C). */
  fedCap: number;
}

interface GeometryEntry {
  name: string;
  dtype: Extract<DType, 'float32' | 'bool'>;
  dims: Dim[];
  /** Writes row b's values into `out` (already sized `[B, ...]` and zero-filled). */
  fill(out: Float32Array | Uint8Array, b: number, row: GeometryRow, shape: GeometryShape): void;
}

function inImage(row: GeometryRow, position: number): boolean {
  for (const s of row.images) if (position >= s.start && position < s.start + s.length) return true;
  return false;
}

/** Calls `each(index, position)` for every real key of a row in the `[past | new]` layout. */
function forRealKeys(row: GeometryRow, shape: GeometryShape, each: (index: number, position: number) => void): void {
  for (let j = 0; j < Math.min(row.past, shape.fedCap); j++) each(j, j);
  for (let t = 0; t < row.newTokens; t++) each(shape.fedCap + t, row.past + t);
}

export const GEOMETRY = {
  /** [batch, new_tokens] f32: 1 for real query rows, 0 for padding. */
  queryValid: {
    name: 'rows.query_valid', dtype: 'float32', dims: [DIM.batch, DIM.queries],
    fill: (out, b, row, shape) => out.fill(1, b * shape.newTokens, b * shape.newTokens + row.newTokens),
  },
  /** [batch, total_keys] f32: sequence position of each key, -1 for empty or padded slots. */
  keyPositions: {
    name: 'rows.key_positions', dtype: 'float32', dims: [DIM.batch, DIM.keys],
    fill(out, b, row, shape) {
      const K = shape.fedCap + shape.newTokens;
      out.fill(-1, b * K, (b + 1) * K);
      forRealKeys(row, shape, (j, pos) => (out[b * K + j] = pos));
    },
  },
  /** [batch] f32: tokens in the row's sequence after this step (past + real new tokens). */
  seqLens: {
    name: 'rows.seq_lens', dtype: 'float32', dims: [DIM.batch],
    fill: (out, b, row) => void (out[b] = row.past + row.newTokens),
  },
  /** [batch, total_keys] bool: the key is an image token of the row (prompt image spans). */
  keyIsImage: {
    name: 'rows.key_is_image', dtype: 'bool', dims: [DIM.batch, DIM.keys],
    fill(out, b, row, shape) {
      if (!row.images.length) return;
      const K = shape.fedCap + shape.newTokens;
      forRealKeys(row, shape, (j, pos) => {
        if (inImage(row, pos)) out[b * K + j] = 1;
      });
    },
  },
  /** [batch, new_tokens] bool: the query row is an image token. */
  queryIsImage: {
    name: 'rows.query_is_image', dtype: 'bool', dims: [DIM.batch, DIM.queries],
    fill(out, b, row, shape) {
      for (let t = 0; t < row.newTokens; t++) if (inImage(row, row.past + t)) out[b * shape.newTokens + t] = 1;
    },
  },
  /** [batch, new_tokens] bool: one-hot at the row's last real new token (the row that predicts next). */
  lastQuery: {
    name: 'rows.last_query', dtype: 'bool', dims: [DIM.batch, DIM.queries],
    fill: (out, b, row, shape) => void (out[b * shape.newTokens + row.newTokens - 1] = 1),
  },
} as const satisfies Record<string, GeometryEntry>;

export type GeometryInput = keyof typeof GEOMETRY;

/** Fills one geometry input for a whole step. */
export function fillGeometry(which: GeometryInput, shape: GeometryShape, dims: number[]): Float32Array | Uint8Array {
  const entry: GeometryEntry = GEOMETRY[which];
  const size = dims.reduce((a, d) => a * d, 1);
  const out = entry.dtype === 'bool' ? new Uint8Array(size) : new Float32Array(size);
  shape.rows.forEach((row, b) => entry.fill(out, b, row, shape));
  return out;
}
