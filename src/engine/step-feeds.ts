/**
 * Builds the fixed decoder inputs for one engine step: token ids, positions, masks, which positions
 * get logits, and the step geometry that calibrator fragments may read.
 */
import { OrtTensorCtor, type OrtTensor } from './ort-session.js';
import { DECODER_IO } from '../../models/compiler/decoder-graph.js';
import { fillGeometry, GEOMETRY, type GeometryInput, type ImageSpan } from '../../models/compiler/step-geometry.js';

export interface StepRow {
  /** Real new tokens for this row (≥ 1). */
  tokens: readonly number[];
  /** Positions already in the cache. */
  past: number;
  /** Logits for every new token (prompt logprobs) or only the last one. */
  allLogits: boolean;
  /** The row's image placeholder spans, in sequence positions. */
  images: readonly ImageSpan[];
}

export interface StepShape {
  rows: readonly StepRow[];
  /** Padded new-token count: the longest row. */
  newTokens: number;
  /** Past capacity fed this step (0 for a fresh prefill). */
  fedCap: number;
  /** Logit rows per batch row. */
  logitRows: number;
}

export function stepShape(rows: readonly StepRow[], fedCap: number): StepShape {
  const newTokens = Math.max(...rows.map((r) => r.tokens.length));
  return { rows, newTokens, fedCap, logitRows: rows.some((r) => r.allLogits) ? newTokens : 1 };
}

/** Index into a step's logits output for row b's new token t. */
export function logitRowIndex(shape: StepShape, b: number, t: number): number {
  return b * shape.logitRows + (shape.logitRows === 1 ? 0 : t);
}

const causalCache = new Map<string, Float32Array>();

export function buildStepFeeds(shape: StepShape, maxPosition: number, geometry: readonly GeometryInput[]): Record<string, OrtTensor> {
  const { rows, newTokens: T, fedCap: C, logitRows: R } = shape;
  const B = rows.length;
  const ids = new BigInt64Array(B * T);
  const pos = new BigInt64Array(B * T);
  const pastBias = new Float32Array(B * C);
  const logitPos = new BigInt64Array(B * R);
  rows.forEach((r, b) => {
    const n = r.tokens.length;
    for (let t = 0; t < T; t++) {
      // Padding repeats the last real token at a clamped position: harmless, never read back.
      ids[b * T + t] = BigInt(r.tokens[Math.min(t, n - 1)]!);
      pos[b * T + t] = BigInt(Math.min(r.past + t, maxPosition - 1));
    }
    pastBias.fill(-Infinity, b * C + Math.min(r.past, C), (b + 1) * C);
    if (R === 1) logitPos[b] = BigInt(n - 1);
    else for (let t = 0; t < R; t++) logitPos[b * R + t] = BigInt(Math.min(t, n - 1));
  });

  const feeds: Record<string, OrtTensor> = {
    [DECODER_IO.inputIds]: new OrtTensorCtor('int64', ids, [B, T]),
    [DECODER_IO.positionIds]: new OrtTensorCtor('int64', pos, [B, T]),
    [DECODER_IO.pastBias]: new OrtTensorCtor('float32', pastBias, [B, 1, 1, C]),
    [DECODER_IO.causalBias]: new OrtTensorCtor('float32', causalBias(rows.map((r) => r.tokens.length), T), [B, 1, T, T]),
    [DECODER_IO.logitPositions]: new OrtTensorCtor('int64', logitPos, [B, R]),
  };

  const geo = { rows: rows.map((r) => ({ past: r.past, newTokens: r.tokens.length, images: r.images })), newTokens: T, fedCap: C };
  for (const which of geometry) {
    const entry = GEOMETRY[which];
    const dims = entry.dims.map((d) => (d === 'batch' ? B : d === 'new_tokens' ? T : d === 'total_keys' ? C + T : NaN));
    const data = fillGeometry(which, geo, dims);
    feeds[entry.name] = entry.dtype === 'bool'
      ? new OrtTensorCtor('bool', data as Uint8Array, dims)
      : new OrtTensorCtor('float32', data as Float32Array, dims);
  }
  return feeds;
}

/**
 * The causal mask among new tokens. A padding query row (t ≥ the row's real length; only fresh
 * prefills, which have no past, are padded) sees nothing but itself, so its attention is one-hot on
 * its own padding key: it never adds mass to a real key, which keeps calibrator statistics over
 * query rows exact without masking them in every fragment.
 */
function causalBias(lengths: readonly number[], T: number): Float32Array {
  const key = `${T}:${lengths.join(',')}`;
  let m = causalCache.get(key);
  if (!m) {
    m = new Float32Array(lengths.length * T * T);
    lengths.forEach((n, b) => {
      for (let q = 0; q < T; q++) {
        const row = (b * T + q) * T;
        if (q < n) m!.fill(-Infinity, row + q + 1, row + T);
        else {
          m!.fill(-Infinity, row, row + T);
          m![row + q] = 0;
        }
      }
    });
    if (causalCache.size > 256) causalCache.clear();
    causalCache.set(key, m);
  }
  return m;
}
