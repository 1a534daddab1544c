/**
 * Seeded random LLaVA vision weights of any CLIP shape, in memory, for benchmarks that need a tower
 * wider than tiny-llava's (no checkpoint file, no download). Not a trained model: its features are
 * noise, but its graph, and so its cost per image, are those of a real tower of that shape.
 */
import type { VisionConfig, VisionLayerWeights, VisionWeights } from '../models/checkpoint/vision-weights.js';
import { RowRng } from '../src/engine/sampling/rng.js';

export type SyntheticVisionShape = Pick<
  VisionConfig,
  'hiddenSize' | 'intermediateSize' | 'nHeads' | 'nLayers' | 'imageSize' | 'patchSize' | 'featureLayer' | 'lmDim'
>;

/** LLaVA-1.5's tower: CLIP ViT-L/14 at 336 px (577 tokens), features from hidden state −2, projector to 4096. */
export const CLIP_VIT_L_336: SyntheticVisionShape = {
  hiddenSize: 1024, intermediateSize: 4096, nHeads: 16, nLayers: 24, imageSize: 336, patchSize: 14, featureLayer: 23, lmDim: 4096,
};

export function syntheticVision(shape: SyntheticVisionShape, seed = 7): VisionWeights {
  const rng = RowRng.fromSeed(seed);
  const D = shape.hiddenSize, I = shape.intermediateSize, C = 3, P = shape.patchSize;
  const S = Math.floor(shape.imageSize / P) ** 2 + 1;
  // Scaled like a standard init (±1/√fan-in), so activations stay finite over many blocks.
  const uniform = (n: number, bound: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rng.nextUniform() * 2 - 1) * bound;
    return a;
  };
  const matrix = (rows: number, cols: number) => uniform(rows * cols, 1 / Math.sqrt(cols));
  const ones = (n: number) => new Float32Array(n).fill(1);
  const zeros = (n: number) => new Float32Array(n);
  const linear = (out: number, inDim: number) => ({ weight: matrix(out, inDim), bias: zeros(out) });
  const norm = () => ({ weight: ones(D), bias: zeros(D) });
  // Only the blocks the features compute: the rest would never be read.
  const layers: VisionLayerWeights[] = Array.from({ length: shape.featureLayer }, () => ({
    layerNorm1: norm(), q: linear(D, D), k: linear(D, D), v: linear(D, D), out: linear(D, D), layerNorm2: norm(), fc1: linear(I, D), fc2: linear(D, I),
  }));
  return {
    config: {
      ...shape, headDim: D / shape.nHeads, nChannels: C, layerNormEps: 1e-5, hiddenAct: 'quick_gelu',
      selectStrategy: 'default', projectorAct: 'gelu', projectorBias: true,
    },
    patchEmbedding: uniform(D * C * P * P, 1 / Math.sqrt(C * P * P)),
    classEmbedding: uniform(D, 0.5),
    positionEmbedding: uniform(S * D, 0.5),
    preLayerNorm: norm(),
    layers,
    projector: { linear1: linear(shape.lmDim, D), linear2: linear(shape.lmDim, shape.lmDim) },
  };
}
