/**
 * The tiny-llava fixture (../shared/models/tiny-llava) for engine tests: its weights, vision side and
 * tokenizer; an in-process engine model with the vision tower; fixture images preprocessed as a
 * request's are; chat prompts rendered through the model's own template and processor step; and the
 * float64 reference forward of a prompt with images (vision tower → projector → splice → decoder).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadLlavaVision, type LlavaVision } from '../../models/checkpoint/llava-vision.js';
import { loadDecoderWeights } from '../../models/load-decoder.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import { resolveModel } from '../../models/resolve.js';
import { compileChatTemplate, renderChatPrompt, type RenderedPrompt } from '../../src/api/chat-prompt.js';
import { loadChatTemplateSource, loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { loadVisionPromptAssets, type VisionPromptAssets } from '../../models/vision-model.js';
import { preprocessImage } from '../../src/api/images/preprocess.js';
import type { ChatMessageInput } from '../../src/api/schemas/chat.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import { buildEngineModel } from '../../src/engine/load-engine-model.js';
import type { GenerationRequest, ImageInput } from '../../src/engine/types.js';
import { ReferenceDecoder, type HookFn, type HookName } from '../reference/reference-forward.js';
import { ReferenceVision, spliceImageFeatures } from '../reference/vision-reference.js';
import { request } from './engine-harness.js';
import { modelsDir } from './models-dir.js';

export const TINY_LLAVA_DIR = join(modelsDir, 'tiny-llava');
export const TINY_LLAVA_IMAGES = ['checker.png', 'gray_noise.png', 'half_bright.png', 'noise_two_bright.png', 'one_bright_patch.png'] as const;
export const tinyLlavaImagePath = (file: string): string => join(TINY_LLAVA_DIR, 'images', file);

export interface TinyLlava {
  weights: DecoderWeights;
  vision: LlavaVision;
  tokenizer: Tokenizer;
  prompt: VisionPromptAssets;
  chatTemplate: string;
}

export async function loadTinyLlava(): Promise<TinyLlava> {
  const resolved = await resolveModel('tiny-llava', { modelsDir, env: {}, download: false });
  const weights = await loadDecoderWeights(resolved);
  return {
    weights,
    vision: await loadLlavaVision(resolved.dir),
    tokenizer: await loadTokenizer(resolved, { vocabSize: weights.config.vocabSize }),
    prompt: (await loadVisionPromptAssets(resolved))!,
    chatTemplate: (await loadChatTemplateSource(resolved.dir))!,
  };
}

export interface TinyLlavaEngineOptions {
  calibrators?: readonly AnyCalibrator[];
  profile?: ModelProfile;
  plainFastPath?: boolean;
}

export function tinyLlavaEngineModel(m: TinyLlava, opts: TinyLlavaEngineOptions = {}): Promise<EngineModel> {
  return buildEngineModel({
    name: 'tiny-llava',
    weights: m.weights,
    vision: m.vision,
    tokenizer: m.tokenizer,
    profile: opts.profile ?? {},
    calibrators: opts.calibrators ?? [],
    options: { threads: 1, providers: [], plainFastPath: opts.plainFastPath ?? true },
  });
}

const LIMITS = { maxImageBytes: 10 * 2 ** 20, maxImagePixels: 2 ** 24 };

/** A fixture image (or any image bytes) preprocessed exactly as the chat route does it. */
export async function tinyLlavaImage(m: TinyLlava, fileOrBytes: string | Uint8Array): Promise<ImageInput> {
  const bytes = typeof fileOrBytes === 'string' ? readFileSync(tinyLlavaImagePath(fileOrBytes)) : fileOrBytes;
  const { pixels } = await preprocessImage(bytes, m.prompt.preprocessing, { param: 'image', limits: LIMITS });
  return { pixels, key: typeof fileOrBytes === 'string' ? fileOrBytes : `bytes:${bytes.length}:${bytes[bytes.length - 1]}` };
}

/** One user turn through the model's chat template: the images first (one part each), then the text. */
export function tinyLlavaPrompt(m: TinyLlava, text: string, images: number): RenderedPrompt {
  const content: ChatMessageInput['content'] = [
    ...Array.from({ length: images }, () => ({ type: 'image_url' as const, image_url: { url: 'data:,', detail: undefined } })),
    { type: 'text' as const, text },
  ];
  return renderChatPrompt([{ role: 'user', content }], true, {
    tokenizer: m.tokenizer,
    template: compileChatTemplate(m.chatTemplate),
    maxPromptChars: 1 << 20,
    images: { placeholder: m.prompt.placeholder, imageTokenId: m.prompt.spec.imageTokenId, tokensPerImage: m.prompt.spec.imageSeqLength },
  }, images);
}

/** A greedy engine request for a rendered prompt and its images. */
export function imageRequest(id: string, prompt: RenderedPrompt, images: readonly ImageInput[], sampling: Parameters<typeof request>[2] = {}, calibration: Record<string, unknown> = {}): GenerationRequest {
  return { ...request(id, prompt.ids, sampling, calibration), ...(images.length ? { images: { spans: prompt.images, inputs: [...images] } } : {}) };
}

export interface ReferenceRun {
  /** Logits for every prompt position, then one per generated token (greedy over the reference's own choices is not used: `continuation` is fed). */
  promptLogits: Float64Array[];
  stepLogits: Float64Array[];
}

/**
 * The float64 forward of a prompt with images, then `continuation` fed one token at a time. Hooks
 * (a calibrator's float64 reference) are added to the decoder before the prompt runs.
 */
export function referenceRun(m: TinyLlava, prompt: RenderedPrompt, images: readonly ImageInput[], continuation: readonly number[], hooks: [HookName | '*', HookFn][] = []): ReferenceRun {
  const vision = new ReferenceVision(m.vision.weights);
  const features = images.map((img) => vision.forward(img.pixels).features);
  const decoder = new ReferenceDecoder(m.weights);
  for (const [name, fn] of hooks) decoder.addHook(name, fn);
  const embeds = spliceImageFeatures(m.weights, prompt.ids, m.prompt.spec.imageTokenId, features);
  const promptLogits = decoder.step({ embeds });
  const stepLogits = continuation.map((t) => decoder.step({ tokens: [t] })[0]!);
  return { promptLogits, stepLogits };
}
