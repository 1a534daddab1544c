/**
 * Untrusted image bytes → 8-bit RGB, with sharp (libvips). Only PNG, JPEG and WebP are accepted,
 * judged by their leading bytes; the header's dimensions are checked against the pixel cap before
 * anything decodes (image-header.ts), and sharp's own `limitInputPixels` enforces the same cap while it
 * decodes. Orientation follows EXIF (transformers' `load_image` and vLLM do the same). CMYK and
 * grayscale come out as RGB. Embedded ICC profiles are ignored, as Pillow (and so transformers and
 * vLLM) ignores them: the model sees the stored values. Any alpha channel is flattened onto white,
 * vLLM's choice for RGBA, with Pillow's paste arithmetic (vLLM applies it to RGBA only; here
 * grayscale+alpha and transparent palettes get it too, rather than losing their transparency).
 *
 * Every failure is an ImageInputError: a 400 naming the field. Nothing an image contains can throw
 * anything else.
 */
import sharp, { type OutputInfo } from 'sharp';
import { ApiError } from '../errors.js';
import { sniffImageMime } from './image-header.js';
import { validateImageBytes, type ImageLimits } from './image-url.js';
import type { RgbImage } from './pil-resize.js';

export class ImageInputError extends ApiError {
  override name = 'ImageInputError';

  constructor(param: string, message: string, code: 'invalid_image' | 'image_too_many_pixels' | 'unsupported_image_type') {
    super(400, `${param}: ${message}`, { param, code });
  }
}

/** An ApiError thrown by the shared header checks is already a 400 naming the field; keep it. */
function asImageError(e: unknown, param: string): ApiError {
  if (e instanceof ApiError) return e;
  const raw = e instanceof Error ? e.message : String(e);
  if (/pixel limit/i.test(raw)) return new ImageInputError(param, 'the image has more pixels than the limit (max_image_pixels)', 'image_too_many_pixels');
  // libvips messages name the decoder and the defect (e.g. "VipsJpeg: premature end of JPEG file"); one line of it helps the client.
  const detail = raw.split('\n')[0]!.slice(0, 200);
  return new ImageInputError(param, `the image could not be decoded (${detail})`, 'invalid_image');
}

/** PIL's DIV255 with rounding: ((t + 128) >> 8 + (t + 128)) >> 8. */
function div255(t: number): number {
  const u = t + 128;
  return ((u >> 8) + u) >> 8;
}

export async function decodeImage(bytes: Uint8Array, param: string, limits: ImageLimits): Promise<RgbImage> {
  const mime = sniffImageMime(bytes);
  if (!mime) throw new ImageInputError(param, 'the data is not a PNG, JPEG or WebP image', 'unsupported_image_type');
  validateImageBytes(bytes, mime, param, limits);
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(bytes, {
      limitInputPixels: limits.maxImagePixels,
      // Truncated data and decoder errors abort; libjpeg's benign warnings (e.g. stray bytes before a marker) do not.
      failOn: 'error',
      autoOrient: true,
      ignoreIcc: true,
      sequentialRead: true,
    })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw asImageError(e, param);
  }
  const { width, height, channels } = decoded.info;
  const src = decoded.data;
  if (channels === 3) return { width, height, data: new Uint8Array(src.buffer, src.byteOffset, src.byteLength) };
  if (channels !== 4) throw new ImageInputError(param, `the image decodes to ${channels} channels, not RGB`, 'invalid_image');
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; i < src.length; i += 4, o += 3) {
    const a = src[i + 3]!;
    const background = 255 * (255 - a);
    rgb[o] = div255(background + src[i]! * a);
    rgb[o + 1] = div255(background + src[i + 1]! * a);
    rgb[o + 2] = div255(background + src[i + 2]! * a);
  }
  return { width, height, data: rgb };
}
