/**
 * Whether a resolved model is a vision-language model, and what both sides of attune need to know
 * about its images: the tower's facts (for calibrators and the engine) and the prompt placeholder
 * (for the chat template and the processor step).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readLlavaVisionAssets, type LlavaVisionAssets } from './checkpoint/llava-vision.js';
import { featureBlock, patchesPerSide, tokensPerImage, type VisionConfig } from './checkpoint/vision-weights.js';
import type { ResolvedModel } from './resolve.js';

/** transformers' LlavaProcessor default. */
export const DEFAULT_IMAGE_PLACEHOLDER = '<image>';

export function isVisionLanguageModel(model: ResolvedModel): boolean {
  if (model.format !== 'hf') return false;
  try {
    const config = JSON.parse(readFileSync(join(model.dir, 'config.json'), 'utf8')) as { architectures?: unknown; model_type?: unknown };
    const arch = Array.isArray(config.architectures) ? config.architectures[0] : undefined;
    return arch === 'LlavaForConditionalGeneration' || (arch === undefined && config.model_type === 'llava');
  } catch {
    return false; // the decoder loader reports a bad config.json with its path
  }
}

/** What a calibrator (and the engine's model info) may know about the vision tower of an LVLM. */
export interface VisionFacts {
  /** Transformer blocks in the tower, and the ones the served graph computes (0..computedLayers-1). */
  layers: number;
  heads: number;
  /** Patches per image (the tower's tokens without CLS). */
  patches: number;
  /** The tower prepends a CLS token (token 0 of every vision hook's sequence axis). */
  hasCls: boolean;
  /** The block whose output LLaVA takes as features (0-based). */
  featureBlock: number;
  /** Image tokens per image in the language model's prompt, and whether they are the patches in raster order. */
  tokensPerImage: number;
  tokensArePatches: boolean;
  /** The prompt token that stands for one image position. */
  imageTokenId: number;
}

export function visionFacts(config: VisionConfig, imageTokenId: number): VisionFacts {
  return {
    layers: config.nLayers,
    heads: config.nHeads,
    patches: patchesPerSide(config) ** 2,
    hasCls: true,
    featureBlock: featureBlock(config),
    tokensPerImage: tokensPerImage(config),
    tokensArePatches: config.selectStrategy === 'default',
    imageTokenId,
  };
}

export interface VisionPromptAssets extends LlavaVisionAssets {
  /** How the chat template writes an image: tokenizer_config.json's `image_token`, else "<image>". */
  placeholder: string;
}

/** The main thread's view of an LVLM's images; null for text-only models. */
export async function loadVisionPromptAssets(model: ResolvedModel): Promise<VisionPromptAssets | null> {
  if (!isVisionLanguageModel(model)) return null;
  const assets = await readLlavaVisionAssets(model.dir);
  const tokConfigPath = join(model.dir, 'tokenizer_config.json');
  let placeholder = DEFAULT_IMAGE_PLACEHOLDER;
  if (existsSync(tokConfigPath)) {
    const tok = JSON.parse(readFileSync(tokConfigPath, 'utf8')) as { image_token?: unknown };
    if (typeof tok.image_token === 'string' && tok.image_token.length > 0) placeholder = tok.image_token;
  }
  return { ...assets, placeholder };
}
