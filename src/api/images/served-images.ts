/** An LVLM's images on the HTTP side: placeholder facts for prompts, and preprocessing for the tower. */
import type { VisionPromptAssets } from '../../../models/vision-model.js';
import type { ServedImages } from '../context.js';
import type { ImageLimits } from './image-url.js';
import { preprocessImage } from './preprocess.js';

export function servedImages(assets: VisionPromptAssets, limits: ImageLimits): ServedImages {
  return {
    prompt: { placeholder: assets.placeholder, imageTokenId: assets.spec.imageTokenId, tokensPerImage: assets.spec.imageSeqLength },
    preparer: {
      prepare: async (image, param) => (await preprocessImage(image.data, assets.preprocessing, { param, limits })).pixels,
    },
  };
}
