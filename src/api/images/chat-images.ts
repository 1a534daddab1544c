/**
 * A chat request's images, in the order they appear: every image part is validated (count, data
 * URL, byte and pixel caps; remote URLs fetched when the server allows it), then decoded and
 * preprocessed for the model's vision tower. A model without one refuses image parts with a 400.
 * Validation comes first so clients learn about a bad image before anything else, and every check
 * that needs no network runs before the first fetch.
 */
import { createHash } from 'node:crypto';
import type { ImageInput } from '../../engine/types.js';
import type { Limits } from '../../config/schema.js';
import { badRequest } from '../errors.js';
import type { ChatMessageInput } from '../schemas/chat.js';
import type { ImageFetcher } from './image-fetch.js';
import { isRemoteImageUrl, validateImageUrl, type ValidImage } from './image-url.js';

/** Turns one validated image into the vision tower's input; throws a 4xx naming `param` for bad data. */
export interface ImagePreparer {
  prepare(image: ValidImage, param: string): Promise<Float32Array>;
}

/** Where each image part sits in the request, in order. */
export function imageParams(messages: readonly ChatMessageInput[]): string[] {
  const out: string[] = [];
  messages.forEach((m, i) => {
    if (Array.isArray(m.content)) m.content.forEach((p, j) => p.type === 'image_url' && out.push(`messages.${i}.content.${j}.image_url.url`));
  });
  return out;
}

export interface ChatImageOptions {
  limits: Limits;
  modelName: string;
  fetcher: ImageFetcher | null;
  /** Null: the model has no vision tower. */
  preparer: ImagePreparer | null;
  signal?: AbortSignal;
}

export async function loadChatImages(messages: readonly ChatMessageInput[], opts: ChatImageOptions): Promise<ImageInput[]> {
  const { limits, fetcher } = opts;
  const parts: { url: string; param: string }[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      if (part.type !== 'image_url') return;
      const param = `messages.${i}.content.${j}.image_url.url`;
      if (parts.length + 1 > limits.maxImagesPerRequest) throw badRequest(`${param}: at most ${limits.maxImagesPerRequest} images per request (max_images)`, param, 'too_many_images');
      parts.push({ url: part.image_url.url, param });
    });
  });
  if (!parts.length) return [];
  type Checked = { kind: 'remote'; url: URL; param: string } | { kind: 'inline'; image: ValidImage; param: string };
  const checked = parts.map(({ url, param }): Checked =>
    fetcher && isRemoteImageUrl(url) ? { kind: 'remote', url: fetcher.precheck(url, param), param } : { kind: 'inline', image: validateImageUrl(url, param, limits), param });
  const fetched = (c: Checked) => (c.kind === 'remote' ? fetcher!.fetch(c.url, c.param, opts.signal) : Promise.resolve(c.image));
  if (!opts.preparer) {
    // One at a time: at most one fetched body per request is held in memory.
    for (const c of checked) await fetched(c);
    const first = parts[0]!.param.replace(/\.image_url\.url$/, '');
    throw badRequest(`${first}: model ${opts.modelName} has no vision tower; image inputs are not supported`, first, 'model_has_no_vision_tower');
  }
  const out: ImageInput[] = [];
  for (const c of checked) {
    const image = await fetched(c);
    const pixels = await opts.preparer.prepare(image, c.param);
    // The same bytes are the same pixels: the engine encodes an image sent twice in a step once.
    out.push({ pixels, key: createHash('sha256').update(image.data).digest('hex') });
  }
  return out;
}
