/**
 * What the engine needs of a vision tower: encode a batch of preprocessed images into the language
 * model's image features, with the calibrators' vision taps per image.
 */
import type { TapValue, Taps } from '../../calibrators/calibrator.js';
import type { VisionSession } from './vision-session.js';

export interface EncodedImage {
  /** `[tokensPerImage, width]` row-major. */
  features: Float32Array;
  /** Vision taps by owner (calibrator id). */
  taps: ReadonlyMap<string, Taps>;
}

export interface ImageEncoder {
  readonly tokensPerImage: number;
  /** Values in one preprocessed image (channels × height × width). */
  readonly pixelsPerImage: number;
  /** The language model's residual width. */
  readonly width: number;
  encode(pixels: readonly Float32Array[]): Promise<EncodedImage[]>;
}

/** The vision session as an ImageEncoder: taps regrouped by owner as the calibrator contract hands them over. */
export function sessionEncoder(session: VisionSession): ImageEncoder {
  return {
    tokensPerImage: session.graph.tokensPerImage,
    pixelsPerImage: session.pixelsPerImage,
    width: session.graph.lmDim,
    async encode(pixels) {
      const out = await session.run(pixels);
      return out.map((img) => ({
        features: img.features,
        taps: new Map(Object.entries(img.taps).map(([owner, byName]) => [owner, new Map<string, TapValue>(Object.entries(byName))])),
      }));
    },
  };
}
