/**
 * Validation of one `image_url` part: a base64 `data:` URL of PNG, JPEG or WebP, within the decoded
 * byte cap and the pixel cap (read from the header). Remote http(s) URLs are refused here: fetching
 * them is off unless the operator enables it (image-fetch.ts), because a server that fetches URLs
 * from request bodies is an SSRF vector (serving-notes §3). Every other scheme (file:, ftp:, …) is
 * refused outright.
 */
import type { Limits } from '../../config/schema.js';
import { ApiError, badRequest } from '../errors.js';
import { readImageSize, type ImageMime, type ImageSize } from './image-header.js';

export interface ValidImage extends ImageSize {
  mime: ImageMime;
  bytes: number;
  /** The encoded image itself. */
  data: Uint8Array;
}

export type ImageLimits = Pick<Limits, 'maxImageBytes' | 'maxImagePixels'>;

const MIME_ALIASES: Record<string, ImageMime> = {
  'image/png': 'image/png',
  'image/jpeg': 'image/jpeg',
  'image/jpg': 'image/jpeg',
  'image/webp': 'image/webp',
};
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function isRemoteImageUrl(url: string): boolean {
  return /^https?:\/\//i.test(url);
}

export function validateImageUrl(url: string, param: string, limits: ImageLimits): ValidImage {
  if (isRemoteImageUrl(url)) {
    throw new ApiError(400, `${param}: fetching images from http(s) URLs is disabled on this server (--image-fetch); send the image inline as a base64 data: URL`, {
      param,
      code: 'image_url_fetch_disabled',
    });
  }
  const m = /^data:([^,;]*)((?:;[^,;]*)*),/i.exec(url.slice(0, 256));
  if (!m) throw badRequest(`${param}: expected a data: URL (data:image/png;base64,...)`, param, 'invalid_image_url');
  const mime = MIME_ALIASES[m[1]!.trim().toLowerCase()];
  if (!mime) throw badRequest(`${param}: image type '${m[1]}' is not supported; use image/png, image/jpeg or image/webp`, param, 'unsupported_image_type');
  if (!m[2]!.toLowerCase().split(';').includes('base64')) throw badRequest(`${param}: the data URL must be base64-encoded (;base64,)`, param, 'invalid_image_url');

  const payload = url.slice(m[0].length);
  // The decoded size is known from the length, so an oversized image is refused before decoding.
  const padding = payload.endsWith('==') ? 2 : payload.endsWith('=') ? 1 : 0;
  const decodedBytes = Math.floor((payload.length * 3) / 4) - padding;
  if (decodedBytes > limits.maxImageBytes) throw imageTooLarge(param, `the image is ${decodedBytes} bytes`, limits.maxImageBytes);
  if (payload.length === 0 || payload.length % 4 !== 0 || !BASE64.test(payload)) throw badRequest(`${param}: the data URL's payload is not valid base64`, param, 'invalid_image_url');

  return validateImageBytes(Buffer.from(payload, 'base64'), mime, param, limits);
}

/** The checks every image gets once its bytes are in hand, however they arrived. */
export function validateImageBytes(bytes: Uint8Array, mime: ImageMime, param: string, limits: ImageLimits): ValidImage {
  if (bytes.length > limits.maxImageBytes) throw imageTooLarge(param, `the image is ${bytes.length} bytes`, limits.maxImageBytes);
  const size = readImageSize(bytes, mime);
  if (!size || size.width === 0 || size.height === 0) throw badRequest(`${param}: the data is not a valid ${mime} image`, param, 'invalid_image');
  const pixels = size.width * size.height;
  if (pixels > limits.maxImagePixels) {
    throw badRequest(
      `${param}: the image is ${size.width}x${size.height} = ${pixels} pixels, more than the limit of ${limits.maxImagePixels} (max_image_pixels)`,
      param,
      'image_too_many_pixels',
    );
  }
  return { mime, bytes: bytes.length, data: bytes, ...size };
}

export function imageTooLarge(param: string, what: string, maxBytes: number): ApiError {
  return badRequest(`${param}: ${what}, more than the limit of ${maxBytes} (max_image_bytes)`, param, 'image_too_large');
}
