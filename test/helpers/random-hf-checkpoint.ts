/**
 * Writes tiny random checkpoints in the real HF layout (config.json + model.safetensors with the
 * transformers tensor names), for Llama and Qwen2, in F32 or BF16.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type WritableDtype, type WritableTensor } from '../../models/checkpoint/safetensors-writer.js';
import { RowRng } from '../../src/engine/sampling/rng.js';

export interface RandomHfOptions {
  arch: 'llama' | 'qwen2' | 'mistral';
  dtype: WritableDtype;
  tied: boolean;
  vocab?: number;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  maxPositions?: number;
  ropeTheta?: number;
  /** Written as config.json's `rope_scaling`. */
  ropeScaling?: Record<string, unknown>;
  seed?: number;
}

/** Seeded uniforms in [0, 1) from the engine's generator: reproducible, one PRNG project-wide. */
function rng(seed: number): () => number {
  const g = RowRng.fromSeed(seed);
  return () => g.nextUniform();
}

export async function writeRandomHfCheckpoint(dir: string, o: RandomHfOptions): Promise<void> {
  const vocab = o.vocab ?? 512, D = o.hidden ?? 48, F = o.intermediate ?? 96, L = o.layers ?? 2;
  const H = o.heads ?? 6, KV = o.kvHeads ?? 2, hd = D / H;
  const rand = rng(o.seed ?? 7);
  const t = (shape: number[], scale = 0.2, offset = 0): WritableTensor => ({
    dtype: o.dtype,
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + (rand() * 2 - 1) * scale),
  });
  const tensors: Record<string, WritableTensor> = { 'model.embed_tokens.weight': t([vocab, D], 0.5), 'model.norm.weight': t([D], 0.1, 1) };
  if (!o.tied) tensors['lm_head.weight'] = t([vocab, D], 0.3);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    Object.assign(tensors, {
      [`${p}.input_layernorm.weight`]: t([D], 0.1, 1),
      [`${p}.post_attention_layernorm.weight`]: t([D], 0.1, 1),
      [`${p}.self_attn.q_proj.weight`]: t([H * hd, D]),
      [`${p}.self_attn.k_proj.weight`]: t([KV * hd, D]),
      [`${p}.self_attn.v_proj.weight`]: t([KV * hd, D]),
      [`${p}.self_attn.o_proj.weight`]: t([D, H * hd]),
      [`${p}.mlp.gate_proj.weight`]: t([F, D]),
      [`${p}.mlp.up_proj.weight`]: t([F, D]),
      [`${p}.mlp.down_proj.weight`]: t([D, F]),
    });
    if (o.arch === 'qwen2') {
      Object.assign(tensors, {
        [`${p}.self_attn.q_proj.bias`]: t([H * hd], 0.5),
        [`${p}.self_attn.k_proj.bias`]: t([KV * hd], 0.5),
        [`${p}.self_attn.v_proj.bias`]: t([KV * hd], 0.5),
      });
    }
  }
  const arch = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', mistral: 'MistralForCausalLM' }[o.arch];
  const config = {
    architectures: [arch],
    model_type: o.arch,
    hidden_size: D,
    intermediate_size: F,
    num_hidden_layers: L,
    num_attention_heads: H,
    num_key_value_heads: KV,
    vocab_size: vocab,
    max_position_embeddings: o.maxPositions ?? 256,
    rms_norm_eps: 1e-6,
    rope_theta: o.ropeTheta ?? 500000,
    ...(o.ropeScaling ? { rope_scaling: o.ropeScaling } : {}),
    hidden_act: 'silu',
    tie_word_embeddings: o.tied,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: o.dtype === 'BF16' ? 'bfloat16' : 'float32',
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
}
