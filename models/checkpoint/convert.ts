/**
 * DecoderWeights → an HF Llama checkpoint (config.json + model.safetensors), the layout
 * `hf-decoder.ts` and transformers both read. llama2.c's interleaved RoPE pairs are turned into
 * rotate_half halves by permuting wq/wk rows, which is how HF's own conversion script does it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DecoderWeights, RopeScaling } from './decoder-weights.js';
import { writeSafetensors, type WritableDtype, type WritableTensor } from './safetensors-writer.js';

export interface HfLlamaConfigJson {
  architectures: ['LlamaForCausalLM'];
  model_type: 'llama';
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: HfRopeScaling | null;
  hidden_act: 'silu';
  attention_bias: false;
  mlp_bias: false;
  tie_word_embeddings: boolean;
  bos_token_id: number;
  eos_token_id: number;
  torch_dtype: 'float32' | 'float16' | 'bfloat16';
}

export type HfRopeScaling =
  | { rope_type: 'linear'; factor: number }
  | { rope_type: 'llama3'; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number };

export interface HfCheckpoint {
  config: HfLlamaConfigJson;
  tensors: Record<string, WritableTensor>;
}

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

/**
 * Within each head of `headDim` rows, row 2i moves to i and row 2i+1 to i + headDim/2, so the pair
 * llama2.c rotates together, (2i, 2i+1), becomes the pair HF's rotate_half rotates, (i, i + hd/2).
 */
export function interleavedToRotateHalf(w: Float32Array, nHeads: number, headDim: number): Float32Array {
  return permuteHeadRows(w, nHeads, headDim, (i) => (i % 2 === 0 ? i / 2 : (i - 1) / 2 + headDim / 2));
}

/** The inverse of interleavedToRotateHalf. */
export function rotateHalfToInterleaved(w: Float32Array, nHeads: number, headDim: number): Float32Array {
  const half = headDim / 2;
  return permuteHeadRows(w, nHeads, headDim, (i) => (i < half ? 2 * i : 2 * (i - half) + 1));
}

/** `target(i)` is where source row i of each head lands. */
function permuteHeadRows(w: Float32Array, nHeads: number, headDim: number, target: (i: number) => number): Float32Array {
  const rows = nHeads * headDim;
  if (headDim % 2 !== 0 || w.length % rows !== 0) throw new Error(`cannot permute ${w.length} values as ${nHeads} heads of ${headDim} rows`);
  const cols = w.length / rows;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < headDim; i++) {
      const from = (h * headDim + i) * cols;
      out.set(w.subarray(from, from + cols), (h * headDim + target(i)) * cols);
    }
  }
  return out;
}

export function llama2cToHf(weights: DecoderWeights, opts: { dtype?: WritableDtype } = {}): HfCheckpoint {
  const dtype = opts.dtype ?? 'F32';
  const c = weights.config;
  if (weights.layers.some((l) => l.bq || l.bk || l.bv)) throw new Error('q/k/v biases have no place in a Llama checkpoint');
  // Weights already in rotate_half layout (e.g. loaded from HF) are written as they are.
  const toHf = (w: Float32Array, heads: number) => (c.ropeStyle === 'interleaved' ? interleavedToRotateHalf(w, heads, c.headDim) : w);
  const tied = weights.lmHead === weights.tokenEmbedding;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const tensors: Record<string, WritableTensor> = {};
  const put = (name: string, shape: number[], data: Float32Array) => {
    tensors[name] = { dtype, shape, data };
  };

  put('model.embed_tokens.weight', [c.vocabSize, c.dim], weights.tokenEmbedding);
  weights.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    put(`${p}input_layernorm.weight`, [c.dim], l.attnNorm);
    put(`${p}self_attn.q_proj.weight`, [qDim, c.dim], toHf(l.wq, c.nHeads));
    put(`${p}self_attn.k_proj.weight`, [kvDim, c.dim], toHf(l.wk, c.nKvHeads));
    put(`${p}self_attn.v_proj.weight`, [kvDim, c.dim], l.wv);
    put(`${p}self_attn.o_proj.weight`, [c.dim, qDim], l.wo);
    put(`${p}post_attention_layernorm.weight`, [c.dim], l.ffnNorm);
    put(`${p}mlp.gate_proj.weight`, [c.hiddenDim, c.dim], l.wGate);
    put(`${p}mlp.up_proj.weight`, [c.hiddenDim, c.dim], l.wUp);
    put(`${p}mlp.down_proj.weight`, [c.dim, c.hiddenDim], l.wDown);
  });
  put('model.norm.weight', [c.dim], weights.finalNorm);
  if (!tied) put('lm_head.weight', [c.vocabSize, c.dim], weights.lmHead);

  const config: HfLlamaConfigJson = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: hfRopeScaling(c.ropeScaling),
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: tied,
    // llama2.c's sentencepiece convention.
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: TORCH_DTYPE[dtype],
  };
  return { config, tensors };
}

function hfRopeScaling(s: RopeScaling | undefined): HfRopeScaling | null {
  if (!s) return null;
  if (s.type === 'linear') return { rope_type: 'linear', factor: s.factor };
  return {
    rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositionEmbeddings,
  };
}

/** Writes `config.json` and `model.safetensors` into `dir` (created if needed). */
export async function writeHfCheckpoint(dir: string, ckpt: HfCheckpoint): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, 'model.safetensors'), ckpt.tensors, { format: 'pt' });
  await writeFile(join(dir, 'config.json'), JSON.stringify(ckpt.config, null, 2) + '\n');
}
