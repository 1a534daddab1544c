/** An LVLM's images on the HTTP side: placeholder facts for prompts, and preprocessing for the tower. */
import type { VisionPromptAssets } from '../../../models/vision-model.js';
import type { ServedImages } from '../context.js';
import type { ImageLimits } from './image-url.js';
import { decodeForTransform } from './preprocess.js';
import { ImageTransformPool } from './transform-pool.js';

/** One transform thread: the engine worker needs the other core. */
const TRANSFORM_THREADS = 1;

export function servedImages(assets: VisionPromptAssets, limits: ImageLimits): ServedImages {
  const pool = new ImageTransformPool(TRANSFORM_THREADS);
  return {
    prompt: { placeholder: assets.placeholder, imageTokenId: assets.spec.imageTokenId, tokensPerImage: assets.spec.imageSeqLength },
    preparer: {
      // Decoding runs on libuv's pool (sharp); the transform on the pool's thread, or inline when small.
      prepare: async (image, param) => pool.transform(await decodeForTransform(image.data, assets.preprocessing, { param, limits }), assets.preprocessing),
    },
    close: () => pool.close(),
  };
}
