/**
 * Seeded random LLaVA checkpoints in the real llava-hf layouts (config.json, preprocessor_config.json,
 * model.safetensors with transformers' tensor names): a small Llama language model, a CLIP tower and
 * the projector. Tests mutate the returned parts (drop, add or reshape a tensor, edit a config field)
 * before writing them, to check what the loader refuses.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type WritableTensor } from '../../models/checkpoint/safetensors-writer.js';
import { Prng } from './prng.js';

export interface RandomLlavaOptions {
  layout?: 'classic' | 'newer';
  hidden?: number;
  intermediate?: number;
  heads?: number;
  layers?: number;
  imageSize?: number;
  patchSize?: number;
  hiddenAct?: 'quick_gelu' | 'gelu';
  featureLayer?: number;
  strategy?: 'default' | 'full';
  projectorAct?: 'quick_gelu' | 'gelu';
  projectorBias?: boolean;
  /** The language model's hidden size, which the projector writes. */
  lmDim?: number;
  seed?: number;
}

export interface RandomLlava {
  config: Record<string, unknown>;
  preprocessor: Record<string, unknown>;
  tensors: Record<string, WritableTensor>;
  /** Prefixes of the chosen layout. */
  tower: string;
  projector: string;
}

export function randomLlava(o: RandomLlavaOptions = {}): RandomLlava {
  const D = o.hidden ?? 24, I = o.intermediate ?? 40, H = o.heads ?? 3, L = o.layers ?? 3;
  const image = o.imageSize ?? 24, P = o.patchSize ?? 6, C = 3;
  const lm = o.lmDim ?? 20, vocab = 40, lmLayers = 1, lmHeads = 2, lmHidden = 32;
  const S = Math.floor(image / P) ** 2 + 1;
  const rng = new Prng(o.seed ?? 11);
  // Scaled like a standard init (±1/√fan-in), so activations stay O(1) through the tower.
  const t = (shape: number[], scale: number, offset = 0): WritableTensor => ({
    dtype: 'F32',
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + (rng.float() * 2 - 1) * scale),
  });
  const matrix = (out: number, inDim: number) => t([out, inDim], 1 / Math.sqrt(inDim));
  const newer = o.layout === 'newer';
  const tower = newer ? 'model.vision_tower.vision_model.' : 'vision_tower.vision_model.';
  const projector = newer ? 'model.multi_modal_projector.' : 'multi_modal_projector.';
  const lmModel = newer ? 'model.language_model.' : 'language_model.model.';
  const lmHead = newer ? 'lm_head.weight' : 'language_model.lm_head.weight';

  const tensors: Record<string, WritableTensor> = {
    [`${lmModel}embed_tokens.weight`]: t([vocab, lm], 0.5),
    [`${lmModel}norm.weight`]: t([lm], 0.1, 1),
    [lmHead]: t([vocab, lm], 0.3),
    [`${tower}embeddings.class_embedding`]: t([D], 0.5),
    [`${tower}embeddings.patch_embedding.weight`]: t([D, C, P, P], 1 / Math.sqrt(C * P * P)),
    [`${tower}embeddings.position_embedding.weight`]: t([S, D], 0.5),
    [`${tower}pre_layrnorm.weight`]: t([D], 0.1, 1),
    [`${tower}pre_layrnorm.bias`]: t([D], 0.1),
    [`${tower}post_layernorm.weight`]: t([D], 0.1, 1),
    [`${tower}post_layernorm.bias`]: t([D], 0.1),
    [`${projector}linear_1.weight`]: matrix(lm, D),
    [`${projector}linear_2.weight`]: matrix(lm, lm),
  };
  if (o.projectorBias ?? true) {
    tensors[`${projector}linear_1.bias`] = t([lm], 0.1);
    tensors[`${projector}linear_2.bias`] = t([lm], 0.1);
  }
  for (let l = 0; l < lmLayers; l++) {
    const p = `${lmModel}layers.${l}.`;
    Object.assign(tensors, {
      [`${p}input_layernorm.weight`]: t([lm], 0.1, 1),
      [`${p}post_attention_layernorm.weight`]: t([lm], 0.1, 1),
      [`${p}self_attn.q_proj.weight`]: matrix(lm, lm),
      [`${p}self_attn.k_proj.weight`]: matrix(lm, lm),
      [`${p}self_attn.v_proj.weight`]: matrix(lm, lm),
      [`${p}self_attn.o_proj.weight`]: matrix(lm, lm),
      [`${p}mlp.gate_proj.weight`]: matrix(lmHidden, lm),
      [`${p}mlp.up_proj.weight`]: matrix(lmHidden, lm),
      [`${p}mlp.down_proj.weight`]: matrix(lm, lmHidden),
    });
  }
  for (let l = 0; l < L; l++) {
    const p = `${tower}encoder.layers.${l}.`;
    Object.assign(tensors, {
      [`${p}layer_norm1.weight`]: t([D], 0.1, 1),
      [`${p}layer_norm1.bias`]: t([D], 0.1),
      [`${p}self_attn.q_proj.weight`]: matrix(D, D),
      [`${p}self_attn.q_proj.bias`]: t([D], 0.1),
      [`${p}self_attn.k_proj.weight`]: matrix(D, D),
      [`${p}self_attn.k_proj.bias`]: t([D], 0.1),
      [`${p}self_attn.v_proj.weight`]: matrix(D, D),
      [`${p}self_attn.v_proj.bias`]: t([D], 0.1),
      [`${p}self_attn.out_proj.weight`]: matrix(D, D),
      [`${p}self_attn.out_proj.bias`]: t([D], 0.1),
      [`${p}layer_norm2.weight`]: t([D], 0.1, 1),
      [`${p}layer_norm2.bias`]: t([D], 0.1),
      [`${p}mlp.fc1.weight`]: matrix(I, D),
      [`${p}mlp.fc1.bias`]: t([I], 0.1),
      [`${p}mlp.fc2.weight`]: matrix(D, I),
      [`${p}mlp.fc2.bias`]: t([D], 0.1),
    });
  }

  const config = {
    architectures: ['LlavaForConditionalGeneration'],
    model_type: 'llava',
    image_token_index: vocab - 1,
    vision_feature_layer: o.featureLayer ?? -2,
    vision_feature_select_strategy: o.strategy ?? 'default',
    projector_hidden_act: o.projectorAct ?? 'gelu',
    multimodal_projector_bias: o.projectorBias ?? true,
    text_config: {
      model_type: 'llama', hidden_size: lm, intermediate_size: lmHidden, num_hidden_layers: lmLayers, num_attention_heads: lmHeads,
      num_key_value_heads: lmHeads, vocab_size: vocab, max_position_embeddings: 128, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2,
    },
    vision_config: {
      model_type: 'clip_vision_model', hidden_size: D, intermediate_size: I, num_attention_heads: H, num_hidden_layers: L,
      image_size: image, patch_size: P, ...(o.hiddenAct ? { hidden_act: o.hiddenAct } : {}),
    },
  };
  const preprocessor = {
    image_processor_type: 'CLIPImageProcessor',
    size: { shortest_edge: image },
    crop_size: { height: image, width: image },
    resample: 3,
  };
  return { config, preprocessor, tensors, tower, projector };
}

export async function writeLlava(dir: string, m: Pick<RandomLlava, 'config' | 'preprocessor' | 'tensors'>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(m.config, null, 2));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(m.preprocessor, null, 2));
  await writeSafetensors(join(dir, 'model.safetensors'), m.tensors);
}
