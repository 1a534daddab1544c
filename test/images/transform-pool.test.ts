/**
 * Large images are transformed on a worker thread, bit for bit as inline, and the HTTP thread keeps
 * running meanwhile; small ones stay inline.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImageProcessorConfig } from '../../models/checkpoint/image-processor-config.js';
import { preprocessRgb, transformPeakPixels } from '../../src/api/images/preprocess.js';
import { ImageTransformPool, INLINE_TRANSFORM_PIXELS } from '../../src/api/images/transform-pool.js';
import { Prng } from '../helpers/prng.js';

const preprocessing = parseImageProcessorConfig({
  image_processor_type: 'CLIPImageProcessor', size: { shortest_edge: 336 }, crop_size: { height: 336, width: 336 }, resample: 3,
  do_center_crop: true, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true,
});

function randomRgb(width: number, height: number, seed: number) {
  const r = new Prng(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => r.int(0, 255)) };
}

describe('image transform pool', () => {
  it('transforms a large image on a worker thread, equal to the inline result, without holding the event loop', async () => {
    const pool = new ImageTransformPool(1);
    try {
      const image = randomRgb(2000, 1500, 3);
      const expected = preprocessRgb({ ...image, data: image.data.slice() }, preprocessing).pixels;
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const pixels = await pool.transform(image, preprocessing);
      clearInterval(timer);
      assert.equal(pixels.length, 3 * 336 * 336);
      assert.ok(pixels.every((v, i) => Object.is(v, expected[i])), 'bit-identical to the inline transform');
      assert.ok(ticks > 0, 'timers ran while the worker transformed the image');
      assert.equal(image.data.byteLength, 0, 'the decoded image moved to the worker instead of being copied');
    } finally {
      await pool.close();
    }
  });

  it('keeps small images inline', async () => {
    const pool = new ImageTransformPool(1);
    try {
      const image = randomRgb(64, 48, 5);
      assert.ok(image.width * image.height <= INLINE_TRANSFORM_PIXELS);
      const pixels = await pool.transform(image, preprocessing);
      assert.equal(image.data.byteLength, 64 * 48 * 3, 'not transferred: it never left this thread');
      assert.deepEqual(pixels, preprocessRgb(image, preprocessing).pixels);
    } finally {
      await pool.close();
    }
  });

  it('sends a thin strip to the worker: few pixels, but its resize holds millions', async () => {
    const pool = new ImageTransformPool(1);
    try {
      const image = randomRgb(4096, 1, 7);
      assert.ok(image.width * image.height <= INLINE_TRANSFORM_PIXELS);
      assert.equal(transformPeakPixels(image, preprocessing), 336 * 4096 * 336);
      const expected = preprocessRgb({ ...image, data: image.data.slice() }, preprocessing).pixels;
      const pixels = await pool.transform(image, preprocessing);
      assert.equal(image.data.byteLength, 0, 'transferred to the worker');
      assert.ok(pixels.every((v, i) => Object.is(v, expected[i])));
    } finally {
      await pool.close();
    }
  });
});
