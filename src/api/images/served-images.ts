/** An LVLM's images on the HTTP side: placeholder facts for prompts, and preprocessing for the tower. */
import type { VisionPromptAssets } from '../../../models/vision-model.js';
import type { ServedImages } from '../context.js';
import { decodeImage, ImageInputError } from './decode.js';
import type { ImageLimits } from './image-url.js';
import { transformPeakPixels } from './preprocess.js';
import { ImageTransformPool } from './transform-pool.js';

/** One transform thread: the engine worker needs the other core. */
const TRANSFORM_THREADS = 1;

export function servedImages(assets: VisionPromptAssets, limits: ImageLimits): ServedImages {
  const pool = new ImageTransformPool(TRANSFORM_THREADS);
  return {
    prompt: { placeholder: assets.placeholder, imageTokenId: assets.spec.imageTokenId, tokensPerImage: assets.spec.imageSeqLength },
    preparer: {
      // Decoding runs on libuv's pool (sharp); the transform on the pool's thread, or inline when small.
      prepare: async (image, param) => {
        const decoded = await decodeImage(image.data, param, limits);
        // The cap bounds what the transform holds, not only the source: a thin strip grows when resized.
        const peak = transformPeakPixels(decoded, assets.preprocessing);
        if (peak > limits.maxImagePixels) {
          throw new ImageInputError(
            param,
            `the ${decoded.width}x${decoded.height} image would grow to ${peak} pixels when padded or resized for the vision tower, more than the limit of ${limits.maxImagePixels} (max_image_pixels); its aspect ratio is too extreme`,
            'image_too_many_pixels',
          );
        }
        return pool.transform(decoded, assets.preprocessing);
      },
    },
    close: () => pool.close(),
  };
}
