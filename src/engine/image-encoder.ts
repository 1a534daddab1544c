/**
 * What the engine needs of a vision tower: encode a batch of preprocessed images into the language
 * model's image features, with the calibrators' vision taps per image.
 */
import type { Taps } from '../../calibrators/calibrator.js';

export interface EncodedImage {
  /** `[tokensPerImage, width]` row-major. */
  features: Float32Array;
  /** Vision taps by owner (calibrator id). */
  taps: ReadonlyMap<string, Taps>;
}

export interface ImageEncoder {
  readonly tokensPerImage: number;
  /** The language model's residual width. */
  readonly width: number;
  encode(pixels: readonly Float32Array[]): Promise<EncodedImage[]>;
}
