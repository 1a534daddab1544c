/**
 * Where an image's transform (pad, resize, crop, normalise: plain JavaScript, Pillow's arithmetic)
 * runs. A 12 MP photo takes about 160–240 ms of CPU, which on the HTTP thread would stall every other
 * request and health probe; so images above a small size go to a pool of worker threads (piscina,
 * the Node.js project's worker pool), and small ones, where the thread hop would cost more than the
 * work, run inline.
 */
import { Piscina } from 'piscina';
import type { ImagePreprocessing } from '../../../models/checkpoint/image-processor-config.js';
import type { RgbImage } from './pil-resize.js';
import { preprocessRgb, transformPeakPixels } from './preprocess.js';
import type { TransformTask } from './transform-worker.js';

/** Pixels up to which an image is transformed inline (a 256×256 image takes well under a millisecond). */
export const INLINE_TRANSFORM_PIXELS = 256 * 256;
/**
 * And the most pixels its transform may hold then (a 256×192 photo resized for a 336-pixel tower holds
 * 448×336): a 1x65,536 strip is small, but its resize to a 32-pixel edge holds 2 M pixels.
 */
export const INLINE_TRANSFORM_PEAK_PIXELS = 512 * 512;

export class ImageTransformPool {
  private readonly pool: Piscina<TransformTask, Float32Array>;

  constructor(threads: number) {
    this.pool = new Piscina({
      filename: new URL('./transform-worker.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: threads,
      // Threads leave when idle: a server that sees no large images keeps none.
      idleTimeout: 30_000,
    });
  }

  async transform(image: RgbImage, preprocessing: ImagePreprocessing): Promise<Float32Array> {
    const small = image.width * image.height <= INLINE_TRANSFORM_PIXELS && transformPeakPixels(image, preprocessing) <= INLINE_TRANSFORM_PEAK_PIXELS;
    if (small) return preprocessRgb(image, preprocessing).pixels;
    return this.pool.run({ image, preprocessing }, { transferList: [image.data.buffer as ArrayBuffer] });
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
