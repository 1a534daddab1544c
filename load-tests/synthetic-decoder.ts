/**
 * Seeded random decoder weights of any Llama shape, in memory, for benchmarks that need a model
 * wider than the shipped test models (no checkpoint file, no download). Not a trained model: its
 * text is noise, but its graph, and so its per-step cost, are those of a real model of that shape.
 */
import type { DecoderConfig, DecoderWeights, LayerWeights } from '../models/checkpoint/decoder-weights.js';
import { RowRng } from '../src/engine/sampling/rng.js';

/** The shape-defining part of a DecoderConfig; the rest (RoPE, norm epsilon) is fixed here. */
export type SyntheticShape = Pick<DecoderConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'vocabSize' | 'maxSeqLen'>;

export function syntheticDecoder(shape: SyntheticShape, seed = 7): DecoderWeights {
  const rng = RowRng.fromSeed(seed);
  // Scaled like a standard init (±1/√fan-in), so activations stay finite over many layers.
  const matrix = (rows: number, cols: number) => {
    const bound = 1 / Math.sqrt(cols);
    return Float32Array.from({ length: rows * cols }, () => (rng.nextUniform() * 2 - 1) * bound);
  };
  const ones = (n: number) => new Float32Array(n).fill(1);
  const { dim, hiddenDim, nHeads, nKvHeads } = shape;
  const headDim = dim / nHeads;
  const layers: LayerWeights[] = Array.from({ length: shape.nLayers }, () => ({
    attnNorm: ones(dim),
    wq: matrix(nHeads * headDim, dim),
    wk: matrix(nKvHeads * headDim, dim),
    wv: matrix(nKvHeads * headDim, dim),
    wo: matrix(dim, nHeads * headDim),
    ffnNorm: ones(dim),
    wGate: matrix(hiddenDim, dim),
    wDown: matrix(dim, hiddenDim),
    wUp: matrix(hiddenDim, dim),
  }));
  const embedding = matrix(shape.vocabSize, dim);
  return {
    config: { ...shape, headDim, ropeTheta: 10000, rmsNormEps: 1e-5, ropeStyle: 'rotate_half' },
    tokenEmbedding: embedding,
    layers,
    finalNorm: ones(dim),
    lmHead: embedding,
  };
}
