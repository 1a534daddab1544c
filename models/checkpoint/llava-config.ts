/**
 * The vision side of an HF LLaVA `config.json` (`LlavaForConditionalGeneration`, the llava-hf
 * layout): the CLIP `vision_config`, the feature layer and select strategy, the image token and the
 * projector. The language model side is hf-config.ts's. Anything this server cannot run faithfully
 * is refused here, by field name, before any tensor is read.
 */
import { z } from 'zod';
import { parseHfDecoderConfig, type TensorLayout } from './hf-config.js';
import {
  VISION_ACTIVATIONS,
  tokensPerImage,
  type FeatureSelectStrategy,
  type VisionActivation,
  type VisionConfig,
} from './vision-weights.js';

/** Where a checkpoint keeps its tower (`<tower>embeddings.…`, `<tower>encoder.layers.N.…`) and projector. */
export interface VisionTensorLayout {
  tower: string;
  projector: string;
}

export const VISION_LAYOUTS: readonly VisionTensorLayout[] = [
  { tower: 'vision_tower.vision_model.', projector: 'multi_modal_projector.' },
  // transformers ≥ 4.52 saves LLaVA under model.*, beside model.language_model.
  { tower: 'model.vision_tower.vision_model.', projector: 'model.multi_modal_projector.' },
];

export interface LlavaVisionSpec {
  config: VisionConfig;
  /** The prompt token each image position holds before the splice. */
  imageTokenId: number;
  /** Image tokens per image (`image_seq_length`, checked against the tower). */
  imageSeqLength: number;
  /** The original LLaVA-1.5 `image_aspect_ratio: "pad"`: pad to a square of the mean colour first. */
  padToSquare: boolean;
  /** The language model's candidate layouts, so every tensor of the checkpoint can be accounted for. */
  lmLayouts: readonly TensorLayout[];
}

/** transformers' CLIPVisionConfig defaults: llava-hf configs omit fields equal to them (hidden_act, layer_norm_eps). */
const CLIP_VISION_DEFAULTS = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
  image_size: 224, patch_size: 32, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};
/** What LlavaConfig builds when `vision_config` is absent: CLIP ViT-L/14-336. */
const LLAVA_DEFAULT_VISION = {
  ...CLIP_VISION_DEFAULTS, hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16,
  image_size: 336, patch_size: 14,
};

const positiveInt = z.number().int().positive();

const VisionConfigSchema = z.object({
  model_type: z.string().optional(),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_channels: positiveInt,
  image_size: positiveInt,
  patch_size: positiveInt,
  hidden_act: z.string(),
  layer_norm_eps: z.number().positive(),
});

const LlavaTopSchema = z.object({
  vision_config: z.record(z.string(), z.unknown()).nullish(),
  image_token_index: z.number().int().nonnegative().optional(),
  /** transformers 5 spells it image_token_id. */
  image_token_id: z.number().int().nonnegative().optional(),
  vision_feature_layer: z.union([z.number().int(), z.array(z.number().int())]).default(-2),
  vision_feature_select_strategy: z.string().default('default'),
  image_seq_length: positiveInt.optional(),
  projector_hidden_act: z.string().default('gelu'),
  multimodal_projector_bias: z.boolean().default(true),
  /** The original LLaVA code base's option; llava-hf configs do not carry it. */
  image_aspect_ratio: z.string().nullish(),
});

/** LlavaConfig's image token when the config names none (llava-1.5's `<image>` = 32000). */
const DEFAULT_IMAGE_TOKEN = 32000;

export function parseLlavaVisionConfig(json: unknown, source = 'config.json'): LlavaVisionSpec {
  const text = parseHfDecoderConfig(json, source);
  if (text.architecture !== 'LlavaForConditionalGeneration') {
    throw new Error(`${source}: architecture ${text.architecture} has no vision tower (LlavaForConditionalGeneration has)`);
  }
  const topParsed = LlavaTopSchema.safeParse(json);
  if (!topParsed.success) throw new Error(`${source}: ${z.prettifyError(topParsed.error)}`);
  const top = topParsed.data;
  const fail = (field: string, what: string): never => {
    throw new Error(`${source}: ${field}: ${what}`);
  };

  const rawVision = top.vision_config ?? {};
  const visionType = typeof rawVision.model_type === 'string' ? rawVision.model_type : 'clip_vision_model';
  if (visionType !== 'clip_vision_model') fail('vision_config.model_type', `${visionType} is not supported (clip_vision_model is)`);
  const parsed = VisionConfigSchema.safeParse({ ...(top.vision_config ? CLIP_VISION_DEFAULTS : LLAVA_DEFAULT_VISION), ...rawVision });
  if (!parsed.success) throw new Error(`${source} vision_config: ${z.prettifyError(parsed.error)}`);
  const v = parsed.data;

  const activation = (field: string, name: string): VisionActivation =>
    (VISION_ACTIVATIONS as readonly string[]).includes(name)
      ? (name as VisionActivation)
      : fail(field, `${name} is not supported (${VISION_ACTIVATIONS.join(', ')} are)`);
  const headDim = v.hidden_size / v.num_attention_heads;
  if (!Number.isInteger(headDim)) fail('vision_config.hidden_size', `${v.hidden_size} is not divisible by num_attention_heads ${v.num_attention_heads}`);
  if (v.patch_size > v.image_size) fail('vision_config.patch_size', `${v.patch_size} is larger than image_size ${v.image_size}`);
  if (v.num_channels !== 3) fail('vision_config.num_channels', `${v.num_channels} is not supported (images are decoded to RGB)`);

  const layer = top.vision_feature_layer;
  if (Array.isArray(layer)) fail('vision_feature_layer', `a list (features concatenated from several layers) is not supported; give one layer`);
  const L = v.num_hidden_layers;
  // transformers indexes hidden_states, which has L + 1 entries: a negative index counts from the end.
  const featureLayer = (layer as number) < 0 ? L + 1 + (layer as number) : (layer as number);
  if (featureLayer < 0 || featureLayer > L) fail('vision_feature_layer', `${layer as number} is outside the tower's ${L + 1} hidden states (−${L + 1}..${L})`);

  const strategy = top.vision_feature_select_strategy;
  if (strategy !== 'default' && strategy !== 'full') fail('vision_feature_select_strategy', `${strategy} is not supported (default, full are)`);

  if (top.image_token_index !== undefined && top.image_token_id !== undefined && top.image_token_index !== top.image_token_id) {
    fail('image_token_index', `${top.image_token_index} disagrees with image_token_id ${top.image_token_id}; keep one`);
  }
  const imageTokenId = top.image_token_index ?? top.image_token_id ?? DEFAULT_IMAGE_TOKEN;
  if (imageTokenId >= text.config.vocabSize) fail('image_token_index', `${imageTokenId} is outside the vocabulary (${text.config.vocabSize} tokens)`);

  const aspect = top.image_aspect_ratio ?? 'square';
  if (aspect !== 'pad' && aspect !== 'square') fail('image_aspect_ratio', `${aspect} is not supported (pad, square are)`);

  const config: VisionConfig = {
    hiddenSize: v.hidden_size,
    intermediateSize: v.intermediate_size,
    nHeads: v.num_attention_heads,
    headDim,
    nLayers: L,
    imageSize: v.image_size,
    patchSize: v.patch_size,
    nChannels: v.num_channels,
    layerNormEps: v.layer_norm_eps,
    hiddenAct: activation('vision_config.hidden_act', v.hidden_act),
    featureLayer,
    selectStrategy: strategy as FeatureSelectStrategy,
    projectorAct: activation('projector_hidden_act', top.projector_hidden_act),
    projectorBias: top.multimodal_projector_bias,
    lmDim: text.config.dim,
  };
  const perImage = tokensPerImage(config);
  if (top.image_seq_length !== undefined && top.image_seq_length !== perImage) {
    fail('image_seq_length', `${top.image_seq_length}, but the tower gives ${perImage} tokens per image (strategy ${strategy})`);
  }
  return { config, imageTokenId, imageSeqLength: perImage, padToSquare: aspect === 'pad', lmLayouts: text.layouts };
}
