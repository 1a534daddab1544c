/**
 * An HF LLaVA checkpoint directory → its vision side: the CLIP tower's and projector's tensors
 * (VisionWeights), the parsed config and the image preprocessing. The language model loads through
 * hf-decoder.ts from the same directory.
 *
 * Every tensor of the checkpoint must be accounted for: the language model's (hf-decoder checks its
 * own), the tower's and the projector's. Tensors the forward does not use are allowed and never read:
 * `post_layernorm.*` (CLIP's pooled output, which LLaVA ignores), `embeddings.position_ids` (a
 * buffer older checkpoints saved), and blocks after the feature layer (read when present, so a tap
 * can look into them). Anything else is an error naming it; every shape is checked against the config.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseImageProcessorConfig, preprocessedSize, type ImagePreprocessing } from './image-processor-config.js';
import { parseLlavaVisionConfig, VISION_LAYOUTS, type LlavaVisionSpec, type VisionTensorLayout } from './llava-config.js';
import { openSafetensors, type TensorStore } from './safetensors.js';
import {
  checkVisionWeights,
  visionSeqLen,
  type LayerNormWeights,
  type LinearWeights,
  type VisionLayerWeights,
  type VisionWeights,
} from './vision-weights.js';

export const PREPROCESSOR_CONFIG = 'preprocessor_config.json';

export interface LlavaVisionAssets {
  spec: LlavaVisionSpec;
  preprocessing: ImagePreprocessing;
}

export interface LlavaVision extends LlavaVisionAssets {
  weights: VisionWeights;
}

async function readJson(path: string, what: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read ${what}: ${(e as Error).message}`, { cause: e });
  }
}

/** config.json and preprocessor_config.json only: what the HTTP layer needs, no tensors. */
export async function readLlavaVisionAssets(dir: string): Promise<LlavaVisionAssets> {
  const configPath = join(dir, 'config.json');
  const spec = parseLlavaVisionConfig(await readJson(configPath, 'config'), configPath);
  const processorPath = join(dir, PREPROCESSOR_CONFIG);
  const preprocessing = parseImageProcessorConfig(await readJson(processorPath, 'the image preprocessor config'), processorPath, {
    padToSquare: spec.padToSquare,
  });
  const out = preprocessedSize(preprocessing);
  const side = spec.config.imageSize;
  if (!out || out.height !== side || out.width !== side) {
    const got = out ? `${out.height}x${out.width}` : 'a size that depends on the input (no center crop, no fixed resize)';
    throw new Error(`${processorPath}: the preprocessing yields ${got}, but the vision tower takes ${side}x${side} (vision_config.image_size)`);
  }
  return { spec, preprocessing };
}

export async function loadLlavaVision(dir: string): Promise<LlavaVision> {
  const assets = await readLlavaVisionAssets(dir);
  const store = await openSafetensors(dir);
  try {
    return { ...assets, weights: await visionFromStore(assets.spec, store) };
  } finally {
    await store.close();
  }
}

interface Expected {
  shape: number[];
  /** Read into VisionWeights; unused ones are only shape-checked. */
  used: boolean;
  required: boolean;
}

const BLOCK_TENSORS = (D: number, I: number): [string, number[]][] => [
  ['layer_norm1.weight', [D]], ['layer_norm1.bias', [D]],
  ['self_attn.q_proj.weight', [D, D]], ['self_attn.q_proj.bias', [D]],
  ['self_attn.k_proj.weight', [D, D]], ['self_attn.k_proj.bias', [D]],
  ['self_attn.v_proj.weight', [D, D]], ['self_attn.v_proj.bias', [D]],
  ['self_attn.out_proj.weight', [D, D]], ['self_attn.out_proj.bias', [D]],
  ['layer_norm2.weight', [D]], ['layer_norm2.bias', [D]],
  ['mlp.fc1.weight', [I, D]], ['mlp.fc1.bias', [I]],
  ['mlp.fc2.weight', [D, I]], ['mlp.fc2.bias', [D]],
];

export function pickVisionLayout(store: TensorStore): VisionTensorLayout {
  const found = VISION_LAYOUTS.find((l) => store.has(`${l.tower}embeddings.class_embedding`));
  if (!found) {
    const tried = VISION_LAYOUTS.map((l) => `${l.tower}embeddings.class_embedding`).join(' or ');
    throw new Error(`LlavaForConditionalGeneration: the checkpoint has no vision tower (no ${tried})`);
  }
  return found;
}

export async function visionFromStore(spec: LlavaVisionSpec, store: TensorStore): Promise<VisionWeights> {
  const c = spec.config;
  const layout = pickVisionLayout(store);
  const { tower, projector } = layout;
  const D = c.hiddenSize, I = c.intermediateSize, S = visionSeqLen(c);

  const expected = new Map<string, Expected>();
  const want = (name: string, shape: number[], used = true, required = true) => expected.set(name, { shape, used, required });
  want(`${tower}embeddings.class_embedding`, [D]);
  want(`${tower}embeddings.patch_embedding.weight`, [D, c.nChannels, c.patchSize, c.patchSize]);
  want(`${tower}embeddings.position_embedding.weight`, [S, D]);
  want(`${tower}embeddings.position_ids`, [1, S], false, false);
  want(`${tower}pre_layrnorm.weight`, [D]);
  want(`${tower}pre_layrnorm.bias`, [D]);
  want(`${tower}post_layernorm.weight`, [D], false, false);
  want(`${tower}post_layernorm.bias`, [D], false, false);
  const blockPrefix = (l: number) => `${tower}encoder.layers.${l}.`;
  // Blocks after the feature layer are optional, but a block is stored whole or not at all.
  const storedBlocks: number[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const names = BLOCK_TENSORS(D, I).map(([n]) => blockPrefix(l) + n);
    const required = l < c.featureLayer;
    const present = names.filter((n) => store.has(n));
    if (required || present.length > 0) {
      const missing = names.find((n) => !store.has(n));
      if (missing) {
        throw new Error(
          required
            ? `LlavaForConditionalGeneration: the checkpoint has no ${missing}, which the features (vision_feature_layer) need`
            : `LlavaForConditionalGeneration: block ${l} of the vision tower is partly stored: ${missing} is missing`,
        );
      }
      storedBlocks.push(l);
    }
    for (const [n, shape] of BLOCK_TENSORS(D, I)) want(blockPrefix(l) + n, shape, true, required);
  }
  want(`${projector}linear_1.weight`, [c.lmDim, D]);
  want(`${projector}linear_2.weight`, [c.lmDim, c.lmDim]);
  if (c.projectorBias) {
    want(`${projector}linear_1.bias`, [c.lmDim]);
    want(`${projector}linear_2.bias`, [c.lmDim]);
  }

  checkEveryTensorAccountedFor(spec, store, layout, expected);
  for (const [name, e] of expected) {
    if (!store.has(name)) {
      if (e.required) throw new Error(`LlavaForConditionalGeneration: the checkpoint has no ${name}`);
      continue;
    }
    const info = store.info(name);
    if (info.shape.length !== e.shape.length || info.shape.some((d, i) => d !== e.shape[i])) {
      throw new Error(`${name}: stored shape [${info.shape.join(', ')}], but config.json implies [${e.shape.join(', ')}]`);
    }
  }

  const read = (name: string) => store.readFloat32(name);
  const layerNorm = async (p: string): Promise<LayerNormWeights> => ({ weight: await read(`${p}.weight`), bias: await read(`${p}.bias`) });
  const linear = async (p: string): Promise<Required<LinearWeights>> => ({ weight: await read(`${p}.weight`), bias: await read(`${p}.bias`) });
  const layers: VisionLayerWeights[] = [];
  // Stored blocks are contiguous from 0 only if nothing is skipped; a gap would misnumber them.
  for (const [i, l] of storedBlocks.entries()) {
    if (i !== l) throw new Error(`LlavaForConditionalGeneration: vision block ${i} is missing while block ${l} is stored`);
    const p = blockPrefix(l);
    layers.push({
      layerNorm1: await layerNorm(`${p}layer_norm1`),
      q: await linear(`${p}self_attn.q_proj`),
      k: await linear(`${p}self_attn.k_proj`),
      v: await linear(`${p}self_attn.v_proj`),
      out: await linear(`${p}self_attn.out_proj`),
      layerNorm2: await layerNorm(`${p}layer_norm2`),
      fc1: await linear(`${p}mlp.fc1`),
      fc2: await linear(`${p}mlp.fc2`),
    });
  }
  const projectorLinear = async (p: string): Promise<LinearWeights> => ({
    weight: await read(`${p}.weight`),
    ...(c.projectorBias ? { bias: await read(`${p}.bias`) } : {}),
  });
  const weights: VisionWeights = {
    config: { ...c },
    patchEmbedding: await read(`${tower}embeddings.patch_embedding.weight`),
    classEmbedding: await read(`${tower}embeddings.class_embedding`),
    positionEmbedding: await read(`${tower}embeddings.position_embedding.weight`),
    preLayerNorm: await layerNorm(`${tower}pre_layrnorm`),
    layers,
    projector: { linear1: await projectorLinear(`${projector}linear_1`), linear2: await projectorLinear(`${projector}linear_2`) },
  };
  checkVisionWeights(weights);
  return weights;
}

/**
 * A tensor under the tower or projector prefix must be one we expect; any other tensor must belong to
 * the language model (whose own loader checks it in turn).
 */
function checkEveryTensorAccountedFor(
  spec: LlavaVisionSpec,
  store: TensorStore,
  layout: VisionTensorLayout,
  expected: ReadonlyMap<string, Expected>,
): void {
  const lm = spec.lmLayouts.find((l) => store.has(`${l.model}embed_tokens.weight`));
  const belongsToLm = (n: string) => lm !== undefined && (n.startsWith(lm.owned) || n === lm.lmHead);
  const strays = store.names().filter((n) => !expected.has(n) && !belongsToLm(n));
  if (strays.length === 0) return;
  const shown = strays.slice(0, 5).join(', ') + (strays.length > 5 ? `, … (${strays.length} in all)` : '');
  const where = strays.every((n) => n.startsWith(layout.tower) || n.startsWith(layout.projector))
    ? 'the vision tower and projector have tensors this loader does not know'
    : 'the checkpoint has tensors that belong to neither the language model nor the vision tower';
  throw new Error(`LlavaForConditionalGeneration: ${where}, so it cannot be run faithfully: ${shown}`);
}
