/**
 * Image bytes → pixel_values with real decoding: PNG, JPEG and WebP made by sharp in the test, then
 * truncated, corrupted, mislabelled or oversized ones. Every bad image must become a 400 that names
 * the field it came from, and nothing else.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { parseImageProcessorConfig, type ImagePreprocessing } from '../../models/checkpoint/image-processor-config.js';
import { ApiError } from '../../src/api/errors.js';
import { decodeImage } from '../../src/api/images/decode.js';
import type { RgbImage } from '../../src/api/images/pil-resize.js';
import { ImageInputError, padToSquare, preprocessImage, preprocessRgb } from '../../src/api/images/preprocess.js';
import { goldenPixelValues, syntheticRgb } from '../helpers/pil-golden.js';
import { Prng } from '../helpers/prng.js';

const PARAM = 'messages.0.content.1.image_url';
const limits = { maxImageBytes: 10 * 2 ** 20, maxImagePixels: 4096 * 4096 };
/** tiny-llava's preprocessor_config.json. */
const clip32: ImagePreprocessing = parseImageProcessorConfig({
  size: { shortest_edge: 32 }, resample: 3, crop_size: { height: 32, width: 32 }, rescale_factor: 0.00392156862745098,
});
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];
const f = Math.fround;
/** One normalised value as transformers computes it in float32. */
const normalised = (level: number, ch: number) => f(f(f(level * 0.00392156862745098) - f(MEAN[ch]!)) / f(STD[ch]!));

const raw = (img: RgbImage) => sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } });
const solid = (width: number, height: number, rgb: [number, number, number]): RgbImage => {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, data };
};
const pre = (bytes: Uint8Array, p = clip32) => preprocessImage(bytes, p, { param: PARAM, limits });

async function refusal(bytes: Uint8Array, lim = limits): Promise<ApiError> {
  try {
    await preprocessImage(bytes, clip32, { param: PARAM, limits: lim });
  } catch (e) {
    assert.ok(e instanceof ApiError, `not an ApiError: ${String(e)}`);
    assert.equal(e.statusCode, 400);
    assert.equal(e.param, PARAM);
    assert.ok(e.message.startsWith(`${PARAM}: `), e.message);
    return e;
  }
  assert.fail('the image was accepted');
}

describe('image preprocessing with real image bytes', () => {
  const source = syntheticRgb(45, 37);

  it("a non-square PNG larger than 32x32 is resized and cropped exactly as transformers' CLIPImageProcessor does", async () => {
    const out = await pre(await raw(source).png().toBuffer());
    assert.deepEqual([out.height, out.width, out.source], [32, 32, { width: 45, height: 37 }]);
    // golden.json holds Pillow's resize of these pixels and numpy's crop, rescale and normalisation.
    assert.deepEqual(out.pixels, goldenPixelValues());
  });

  it('lossless WebP decodes to the same pixels; JPEG and lossy WebP to nearly the same', async () => {
    assert.deepEqual((await pre(await raw(source).webp({ lossless: true }).toBuffer())).pixels, goldenPixelValues());
    // A smooth image, which lossy coding keeps within a few levels.
    const smooth: RgbImage = { width: 50, height: 40, data: new Uint8Array(50 * 40 * 3) };
    for (let y = 0; y < 40; y++) for (let x = 0; x < 50; x++) smooth.data.set([x * 5, y * 6, (x + y) * 2], (y * 50 + x) * 3);
    const expected = preprocessRgb(smooth, clip32).pixels;
    for (const [kind, bytes] of [
      ['jpeg', await raw(smooth).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer()],
      ['webp', await raw(smooth).webp({ quality: 95 }).toBuffer()],
    ] as const) {
      const out = await pre(bytes);
      assert.equal(out.pixels.length, 3 * 32 * 32);
      const meanError = out.pixels.reduce((s, v, i) => s + Math.abs(v - expected[i]!), 0) / expected.length;
      // One level is about 0.015 after normalisation.
      assert.ok(meanError < 0.03, `${kind}: mean error ${meanError}`);
    }
  });

  it('grayscale becomes RGB with the gray level in every channel', async () => {
    const gray = await sharp(Buffer.alloc(40 * 40, 100), { raw: { width: 40, height: 40, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    assert.equal((await sharp(gray).metadata()).channels, 1);
    const out = await pre(gray);
    for (let ch = 0; ch < 3; ch++) assert.equal(out.pixels[ch * 1024 + 500], normalised(100, ch));
  });

  it('a CMYK JPEG is converted to RGB', async () => {
    const colours: [number, number, number][] = [[190, 70, 60], [70, 150, 80], [80, 100, 170], [220, 220, 220]];
    const blocks = new Uint8Array(64 * 16 * 3);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 64; x++) blocks.set(colours[Math.floor(x / 16)]!, (y * 64 + x) * 3);
    const cmyk = await sharp(Buffer.from(blocks), { raw: { width: 64, height: 16, channels: 3 } }).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    const meta = await sharp(cmyk).metadata();
    assert.deepEqual([meta.space, meta.channels], ['cmyk', 4]);
    const rgb = await decodeImage(cmyk, PARAM, limits);
    colours.forEach((c, i) => {
      const at = (8 * 64 + i * 16 + 8) * 3;
      const got = [...rgb.data.subarray(at, at + 3)];
      // Through a CMYK profile and back: close to the original colour, never channels read as CMYK.
      c.forEach((v, ch) => assert.ok(Math.abs(got[ch]! - v) <= 40, `block ${i}: ${got} vs ${c}`));
    });
  });

  it("an RGBA PNG is flattened onto white with Pillow's paste arithmetic", async () => {
    const rgba = Buffer.alloc(4 * 3 * 4);
    rgba.set([255, 0, 0, 128, 0, 0, 255, 0, 10, 200, 30, 255, 0, 0, 0, 1], 0);
    const png = await sharp(rgba, { raw: { width: 4, height: 3, channels: 4 } }).png().toBuffer();
    const rgb = await decodeImage(png, PARAM, limits);
    // (255,0,0) at alpha 128 over white: green and blue (0·128 + 255·127)/255 = 127; transparent → white.
    assert.deepEqual([...rgb.data.subarray(0, 12)], [255, 127, 127, 255, 255, 255, 10, 200, 30, 254, 254, 254]);
  });

  it('EXIF orientation is applied before anything else', async () => {
    // Stored 40 wide, left half red, right half blue; orientation 6 displays it turned 90° clockwise.
    const img = new Uint8Array(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) img.set(x < 20 ? [220, 20, 20] : [20, 20, 220], (y * 40 + x) * 3);
    const jpeg = await sharp(Buffer.from(img), { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    assert.equal((await sharp(jpeg).metadata()).orientation, 6);
    const rgb = await decodeImage(jpeg, PARAM, limits);
    assert.deepEqual([rgb.width, rgb.height], [20, 40]);
    const pixel = (x: number, y: number) => [...rgb.data.subarray((y * 20 + x) * 3, (y * 20 + x) * 3 + 3)];
    assert.ok(pixel(10, 5)[0]! > 150 && pixel(10, 5)[2]! < 80, `top is red: ${pixel(10, 5)}`);
    assert.ok(pixel(10, 35)[2]! > 150 && pixel(10, 35)[0]! < 80, `bottom is blue: ${pixel(10, 35)}`);
    const out = await pre(jpeg);
    assert.deepEqual(out.source, { width: 20, height: 40 });
  });

  it("LLaVA-1.5's pad mode centres the image on a square of int(mean·255) before resizing", async () => {
    const padded = padToSquare(solid(40, 20, [0, 255, 0]), clip32.padColor);
    assert.deepEqual([padded.width, padded.height], [40, 40]);
    const at = (x: number, y: number) => [...padded.data.subarray((y * 40 + x) * 3, (y * 40 + x) * 3 + 3)];
    assert.deepEqual([at(0, 9), at(0, 10), at(39, 29), at(39, 30)], [[122, 116, 104], [0, 255, 0], [0, 255, 0], [122, 116, 104]]);
    const pad = { ...clip32, padToSquare: true };
    const out = await pre(await raw(solid(40, 20, [0, 255, 0])).png().toBuffer(), pad);
    assert.deepEqual([out.height, out.width], [32, 32]);
    // Resized 40 → 32: the rows far from the seam keep their colour exactly.
    assert.equal(out.pixels[0], normalised(122, 0));
    assert.equal(out.pixels[1024 + 16 * 32 + 16], normalised(255, 1));
    assert.deepEqual(preprocessRgb(solid(40, 20, [0, 255, 0]), pad).pixels, out.pixels);
  });

  it('an image smaller than the crop is padded with zeros, as transformers does', () => {
    const p = { ...clip32, resize: null };
    const out = preprocessRgb(solid(30, 31, [255, 255, 255]), p);
    // Rows: ceil(1/2) = 1 zero row on top; columns: one zero column each side.
    assert.equal(out.pixels[0], normalised(0, 0));
    assert.equal(out.pixels[1 * 32 + 1], normalised(255, 0));
    assert.equal(out.pixels[31 * 32 + 31], normalised(0, 0));
    assert.equal(out.pixels[31 * 32 + 30], normalised(255, 0));
  });
});

describe('bad images are a 400 naming the field', () => {
  const source = syntheticRgb(45, 37);

  it('truncated PNG, JPEG and WebP', async () => {
    for (const bytes of [await raw(source).png().toBuffer(), await raw(source).jpeg().toBuffer(), await raw(source).webp().toBuffer()]) {
      const e = await refusal(bytes.subarray(0, Math.floor(bytes.length * 0.6)));
      assert.equal(e.code, 'invalid_image', e.message);
    }
  });

  it('corrupt data', async () => {
    const png = Buffer.from(await raw(source).png().toBuffer());
    for (let i = 60; i < 80; i++) png[i]! ^= 0x5a; // inside IDAT: the CRC no longer matches
    assert.match((await refusal(png)).message, /could not be decoded/);
    const jpeg = Buffer.from(await raw(source).jpeg().toBuffer());
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    jpeg[sof + 9] = 0; // zero components in the frame header
    assert.equal((await refusal(jpeg)).code, 'invalid_image');
  });

  it('data that is not a PNG, JPEG or WebP image', async () => {
    const gif = await raw(source).gif().toBuffer();
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    for (const bytes of [gif, svg, Buffer.from('%PDF-1.4\n'), Buffer.from('plain text'), Buffer.alloc(0)]) {
      assert.equal((await refusal(bytes)).code, 'unsupported_image_type');
    }
  });

  it('a decompression bomb: 17.6 megapixels in 59 KB, refused from its header before decoding', async () => {
    const bomb = await sharp({ create: { width: 4200, height: 4200, channels: 3, background: '#ffffff' } }).png({ compressionLevel: 9 }).toBuffer();
    assert.ok(bomb.length < 100_000);
    const e = await refusal(bomb);
    assert.equal(e.code, 'image_too_many_pixels');
    assert.match(e.message, /4200x4200 = 17640000 pixels, more than the limit of 16777216/);
  });

  it('a thin strip under the pixel cap whose resize would pass it is refused before the transform', async () => {
    // 1x65,536 is 65,536 pixels; resized to a 32-pixel shortest edge it would be 32x2,097,152.
    const strip = await sharp({ create: { width: 1, height: 65_536, channels: 3, background: '#808080' } }).png().toBuffer();
    const e = await refusal(strip, { ...limits, maxImagePixels: 1 << 20 });
    assert.equal(e.code, 'image_too_many_pixels');
    assert.match(e.message, /1x65536 image would grow to 67108864 pixels/);
  });

  it('over the byte cap', async () => {
    const png = await raw(source).png().toBuffer();
    assert.equal((await refusal(png, { ...limits, maxImageBytes: 100 })).code, 'image_too_large');
  });

  it('mutated images either preprocess to finite pixel values or are refused with a 400, never anything else', async () => {
    const rng = new Prng(20261204);
    const seeds = [await raw(source).png().toBuffer(), await raw(source).jpeg().toBuffer(), await raw(source).webp().toBuffer(), await raw(source).webp({ lossless: true }).toBuffer()];
    let accepted = 0, refused = 0;
    for (let n = 0; n < 240; n++) {
      const bytes = Buffer.from(rng.pick(seeds));
      const mutation = rng.int(0, 2);
      let mutated: Buffer = bytes;
      if (mutation === 0) for (let k = rng.int(1, 8); k > 0; k--) bytes[rng.int(0, bytes.length - 1)] = rng.int(0, 255);
      else if (mutation === 1) mutated = bytes.subarray(0, rng.int(0, bytes.length - 1));
      else mutated = Buffer.concat([bytes.subarray(0, rng.int(0, bytes.length)), Buffer.from(Array.from({ length: rng.int(1, 64) }, () => rng.int(0, 255)))]);
      try {
        const out = await pre(mutated);
        assert.equal(out.pixels.length, 3 * 32 * 32);
        assert.ok(out.pixels.every(Number.isFinite));
        accepted++;
      } catch (e) {
        assert.ok(e instanceof ApiError && e.statusCode === 400 && e.param === PARAM, `case ${n}: ${String(e)}`);
        refused++;
      }
    }
    assert.ok(accepted > 0 && refused > 0, `accepted ${accepted}, refused ${refused}`);
  });

  it('ImageInputError is the ApiError the error handler turns into a 400', () => {
    const e = new ImageInputError(PARAM, 'x', 'invalid_image');
    assert.deepEqual(e.toBody(), { error: { message: `${PARAM}: x`, type: 'invalid_request_error', param: PARAM, code: 'invalid_image' } });
  });
});
