/**
 * A seeded random LLaVA in memory for calibrator benchmarks: the wide Llama-shaped language model
 * the ACT benchmark uses, with a small CLIP-shaped tower (16 image tokens per image) projecting into
 * it. Image 0-token positions are spliced like any LLaVA's. Not a trained model: its text and
 * features are noise, but its graphs, and so their per-step cost, are those of a real model of
 * that shape; vision-calibrator fragments run every op whatever they detect.
 */
import type { DecoderWeights } from '../models/checkpoint/decoder-weights.js';
import type { LlavaVision } from '../models/checkpoint/llava-vision.js';
import { syntheticDecoder, type SyntheticShape } from './synthetic-decoder.js';
import { syntheticVision } from './synthetic-vision.js';

/** The wide model of bench:calibrators: 25M parameters, Llama-shaped. */
export const WIDE_SHAPE: SyntheticShape = { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: 512, maxSeqLen: 512 };

export const SYNTHETIC_IMAGE_TOKEN = 0;

export interface SyntheticLlava {
  weights: DecoderWeights;
  vision: LlavaVision;
  /** Pixels per image, `[3, 32, 32]`. */
  imageSize: number;
}

export function syntheticLlava(shape: SyntheticShape = WIDE_SHAPE, seed = 7): SyntheticLlava {
  const weights = syntheticDecoder(shape, seed);
  const vw = syntheticVision({ hiddenSize: 64, intermediateSize: 128, nHeads: 4, nLayers: 3, imageSize: 32, patchSize: 8, featureLayer: 2, lmDim: shape.dim }, seed + 1);
  return {
    weights,
    imageSize: 3 * 32 * 32,
    vision: {
      weights: vw,
      spec: { config: vw.config, imageTokenId: SYNTHETIC_IMAGE_TOKEN, imageSeqLength: 16, padToSquare: false, lmLayouts: [] },
      preprocessing: { padToSquare: false, padColor: [0, 0, 0], resize: null, resample: 'bicubic', centerCrop: null, rescaleFactor: null, normalize: null },
    },
  };
}
