/**
 * Image prompts for the command line (`attune eval` image items, `attune profile var`), built the way
 * a chat request builds them: the model's chat template with one user turn (the images, then the
 * text), the processor step that expands each image placeholder to the model's image tokens, and
 * each image decoded and preprocessed exactly as the chat route does it. So an evaluation measures
 * what a request with the same image and text would get.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { loadChatTemplateSource } from '../../models/tokenizers/load-tokenizer.js';
import type { ChatTemplate } from '../../models/tokenizers/chat-template.js';
import { loadVisionPromptAssets, type VisionPromptAssets } from '../../models/vision-model.js';
import { compileChatTemplate, renderChatPrompt, type RenderedPrompt } from '../api/chat-prompt.js';
import { ApiError } from '../api/errors.js';
import { preprocessImage } from '../api/images/preprocess.js';
import { validateImageUrl, type ImageLimits } from '../api/images/image-url.js';
import type { ImageInput } from '../engine/types.js';
import type { EvalModel } from './session.js';

/** Images on the command line are the operator's own files: generous caps, still bounded. */
const LIMITS: ImageLimits = { maxImageBytes: 64 * 2 ** 20, maxImagePixels: 2 ** 26 };

export class ImagePromptError extends Error {}

export interface ImagePromptContext {
  model: EvalModel;
  template: ChatTemplate;
  vision: VisionPromptAssets;
}

/** What image prompts need of a model; refuses a model without a vision tower or a chat template. */
export async function imagePromptContext(model: EvalModel): Promise<ImagePromptContext> {
  const vision = await loadVisionPromptAssets(model.resolved);
  if (!vision) throw new ImagePromptError(`model ${model.resolved.name} has no vision tower; image items need a vision-language model (LLaVA)`);
  const source = (await loadChatTemplateSource(model.resolved.dir)) ?? model.profile.chat_template ?? null;
  const template = compileChatTemplate(source);
  if (!template) throw new ImagePromptError(`model ${model.resolved.name} has no chat template, which image prompts are rendered with`);
  return { model, template, vision };
}

/**
 * One user turn with `images` images then `text`, and the generation prompt; `answer` is appended
 * after the template's output (an assistant's reply being scored).
 */
export function renderImagePrompt(ctx: ImagePromptContext, text: string, images: number, answer = ''): RenderedPrompt {
  const content = [
    ...Array.from({ length: images }, () => ({ type: 'image_url' as const, image_url: { url: 'data:,', detail: undefined } })),
    { type: 'text' as const, text },
  ];
  try {
    return renderChatPrompt([{ role: 'user', content }], true, {
      tokenizer: ctx.model.tokenizer,
      template: ctx.template,
      maxPromptChars: Number.MAX_SAFE_INTEGER,
      images: { placeholder: ctx.vision.placeholder, imageTokenId: ctx.vision.spec.imageTokenId, tokensPerImage: ctx.vision.spec.imageSeqLength },
    }, images, answer);
  } catch (e) {
    if (e instanceof ApiError) throw new ImagePromptError(e.message);
    throw e;
  }
}

/**
 * An image given as a file path (relative paths from `baseDir`) or a `data:` URL, decoded and
 * preprocessed for the model's tower. `what` names it in errors.
 */
export async function loadImage(ctx: ImagePromptContext, ref: string, baseDir: string, what: string): Promise<ImageInput> {
  try {
    let bytes: Uint8Array;
    if (ref.startsWith('data:')) bytes = validateImageUrl(ref, what, LIMITS).data;
    else {
      const path = isAbsolute(ref) ? ref : join(baseDir, ref);
      try {
        bytes = await readFile(path);
      } catch (e) {
        throw new ImagePromptError(`${what}: cannot read ${path}: ${(e as Error).message}`);
      }
    }
    const { pixels } = await preprocessImage(bytes, ctx.vision.preprocessing, { param: what, limits: LIMITS });
    return { pixels, key: createHash('sha256').update(bytes).digest('hex') };
  } catch (e) {
    // Decoding and validation errors already name `what`.
    if (e instanceof ApiError) throw new ImagePromptError(e.message);
    throw e;
  }
}
