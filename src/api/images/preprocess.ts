/**
 * An image's bytes → the vision tower's `pixel_values` for it, `Float32Array [3, H, W]`, exactly as
 * transformers' CLIPImageProcessor (and LlavaImageProcessor) computes it from the decoded RGB image:
 *
 *   [pad to a square of the mean colour] → resize (shortest edge, or a fixed size; Pillow's filter)
 *   → center crop → rescale → normalise → channels first.
 *
 * The arithmetic is numpy's: the crop's top/left are `(orig − crop) // 2` and an image smaller than
 * the crop is padded with zeros; rescaling multiplies in float64 and rounds to float32; normalising
 * is `(x − mean) / std` in float32. The processor's "fast" variants (torchvision) are run the same
 * way, so their outputs can differ from transformers' by the resize's rounding.
 *
 * Decoding (sharp) runs on libuv's pool; the resize and the arithmetic run on the calling thread:
 * about as long as Pillow takes in C for the same image, a few milliseconds at typical sizes (see
 * `npm run bench:vision`), bounded by the pixel cap.
 */
import type { ImagePreprocessing, Size2d } from '../../../models/checkpoint/image-processor-config.js';
import { decodeImage, ImageInputError } from './decode.js';
import type { ImageLimits } from './image-url.js';
import { resizeRgb, type RgbImage } from './pil-resize.js';

export { ImageInputError } from './decode.js';

export interface PreprocessedImage {
  /** `[3, height, width]`, channels first. */
  pixels: Float32Array;
  height: number;
  width: number;
  /** The decoded image's size, after EXIF orientation. */
  source: Size2d;
}

export interface PreprocessOptions {
  /** The request field the image came from (`messages.0.content.1.image_url`), named in every error. */
  param: string;
  limits: ImageLimits;
}

export async function preprocessImage(bytes: Uint8Array, p: ImagePreprocessing, opts: PreprocessOptions): Promise<PreprocessedImage> {
  const decoded = await decodeForTransform(bytes, p, opts);
  return { ...preprocessRgb(decoded, p), source: { width: decoded.width, height: decoded.height } };
}

/**
 * Decodes an image and checks that the transform for `p` stays within the pixel cap at every step,
 * not only at the source: a thin strip grows when padded or resized (transformPeakPixels).
 */
export async function decodeForTransform(bytes: Uint8Array, p: ImagePreprocessing, opts: PreprocessOptions): Promise<RgbImage> {
  const decoded = await decodeImage(bytes, opts.param, opts.limits);
  const peak = transformPeakPixels(decoded, p);
  if (peak > opts.limits.maxImagePixels) {
    throw new ImageInputError(
      opts.param,
      `the ${decoded.width}x${decoded.height} image would grow to ${peak} pixels when padded or resized for the vision tower, more than the limit of ${opts.limits.maxImagePixels} (max_image_pixels); its aspect ratio is too extreme`,
      'image_too_many_pixels',
    );
  }
  return decoded;
}

/** The steps after decoding, on an RGB image (pure; exported for tests and benchmarks). */
export function preprocessRgb(image: RgbImage, p: ImagePreprocessing): Omit<PreprocessedImage, 'source'> {
  let img = p.padToSquare ? padToSquare(image, p.padColor) : image;
  if (p.resize) {
    const target = 'shortestEdge' in p.resize ? shortestEdgeSize(img, p.resize.shortestEdge) : p.resize;
    img = resizeRgb(img, target.width, target.height, p.resample);
  }
  if (p.centerCrop) img = centerCrop(img, p.centerCrop);
  return { pixels: toPixelValues(img, p), height: img.height, width: img.width };
}

/**
 * The most pixels any step of the transform holds for an image of `size`: the source, the padded
 * square, the resize's horizontal pass and its output. A thin strip is small on the wire and under
 * the pixel cap, yet padding it to a square or resizing its shortest edge up to the tower's size
 * multiplies its pixels by its aspect ratio (1x2,000,000 becomes 32x64,000,000); callers bound this.
 */
export function transformPeakPixels(size: Size2d, p: ImagePreprocessing): number {
  let { width, height } = size;
  let peak = width * height;
  if (p.padToSquare) {
    width = height = Math.max(width, height);
    peak = width * height;
  }
  if (p.resize) {
    const target = 'shortestEdge' in p.resize ? shortestEdgeSize({ width, height }, p.resize.shortestEdge) : p.resize;
    peak = Math.max(peak, target.width * height, target.width * target.height);
  }
  return peak;
}

/** transformers' get_resize_output_image_size(default_to_square=False): the long edge is int(short · long / short_in). */
export function shortestEdgeSize(img: Size2d, shortest: number): Size2d {
  const { width, height } = img;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((shortest * long) / short);
  return width <= height ? { width: shortest, height: newLong } : { width: newLong, height: shortest };
}

/** LLaVA's expand2square: the image centred on a square of `color`, offset (side − edge) // 2. */
export function padToSquare(img: RgbImage, color: readonly [number, number, number]): RgbImage {
  const side = Math.max(img.width, img.height);
  if (img.width === img.height) return img;
  const out = new Uint8Array(side * side * 3);
  for (let i = 0; i < side * side; i++) out.set(color, i * 3);
  const top = Math.floor((side - img.height) / 2);
  const left = Math.floor((side - img.width) / 2);
  for (let y = 0; y < img.height; y++) {
    out.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((y + top) * side + left) * 3);
  }
  return { width: side, height: side, data: out };
}

/**
 * transformers' center_crop: top/left = (orig − crop) // 2; a smaller image is first centred on zeros
 * with ceil((crop − orig) / 2) before it, then cropped the same way.
 */
export function centerCrop(img: RgbImage, crop: Size2d): RgbImage {
  if (img.width === crop.width && img.height === crop.height) return img;
  const padTop = Math.max(0, Math.ceil((crop.height - img.height) / 2));
  const padLeft = Math.max(0, Math.ceil((crop.width - img.width) / 2));
  const top = Math.floor((Math.max(crop.height, img.height) - crop.height) / 2) - padTop;
  const left = Math.floor((Math.max(crop.width, img.width) - crop.width) / 2) - padLeft;
  const out = new Uint8Array(crop.width * crop.height * 3);
  // The columns of the crop that fall inside the image, copied a row segment at a time.
  const x0 = Math.max(0, -left), x1 = Math.min(crop.width, img.width - left);
  for (let y = 0; y < crop.height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height || x1 <= x0) continue;
    const from = (sy * img.width + left + x0) * 3;
    out.set(img.data.subarray(from, from + (x1 - x0) * 3), (y * crop.width + x0) * 3);
  }
  return { width: crop.width, height: crop.height, data: out };
}

/** Rescale (float64 product rounded to float32) and normalise (float32), channels first. */
function toPixelValues(img: RgbImage, p: ImagePreprocessing): Float32Array {
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  const f = Math.fround;
  const mean = p.normalize?.mean.map(f);
  const std = p.normalize?.std.map(f);
  for (let ch = 0; ch < 3; ch++) {
    for (let i = 0; i < plane; i++) {
      let v = img.data[i * 3 + ch]!;
      if (p.rescaleFactor !== null) v = f(v * p.rescaleFactor);
      if (mean && std) v = f(f(v - mean[ch]!) / std[ch]!);
      out[ch * plane + i] = v;
    }
  }
  return out;
}
