import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { interleavedToRotateHalf } from '../../models/checkpoint/convert.js';
import { parseHfDecoderConfig } from '../../models/checkpoint/hf-config.js';
import { loadHfDecoder } from '../../models/checkpoint/hf-decoder.js';
import { parseLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import { writeSafetensors, type WritableTensor } from '../../models/checkpoint/safetensors-writer.js';
import { modelsDir, stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

interface Dims {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

/** A random checkpoint in HF tensor names; `extra` adds or overrides tensors. */
function randomTensors(d: Dims, opts: { prefix?: string; lmHead?: string | null; bias?: boolean } = {}): Record<string, WritableTensor> {
  let seed = 7;
  const rand = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) - 0.5);
  const t = (...shape: number[]): WritableTensor => ({ dtype: 'F32', shape, data: rand(shape.reduce((a, b) => a * b, 1)) });
  const m = opts.prefix ?? 'model.';
  const q = d.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  const out: Record<string, WritableTensor> = { [`${m}embed_tokens.weight`]: t(d.vocab, d.dim), [`${m}norm.weight`]: t(d.dim) };
  for (let l = 0; l < d.layers; l++) {
    const p = `${m}layers.${l}.`;
    Object.assign(out, {
      [`${p}input_layernorm.weight`]: t(d.dim),
      [`${p}self_attn.q_proj.weight`]: t(q, d.dim),
      [`${p}self_attn.k_proj.weight`]: t(kv, d.dim),
      [`${p}self_attn.v_proj.weight`]: t(kv, d.dim),
      [`${p}self_attn.o_proj.weight`]: t(d.dim, q),
      [`${p}post_attention_layernorm.weight`]: t(d.dim),
      [`${p}mlp.gate_proj.weight`]: t(d.hidden, d.dim),
      [`${p}mlp.up_proj.weight`]: t(d.hidden, d.dim),
      [`${p}mlp.down_proj.weight`]: t(d.dim, d.hidden),
    });
    if (opts.bias) {
      out[`${p}self_attn.q_proj.bias`] = t(q);
      out[`${p}self_attn.k_proj.bias`] = t(kv);
      out[`${p}self_attn.v_proj.bias`] = t(kv);
    }
  }
  if (opts.lmHead !== null) out[opts.lmHead ?? 'lm_head.weight'] = t(d.vocab, d.dim);
  return out;
}

const small: Dims = { dim: 16, hidden: 24, layers: 2, heads: 4, kvHeads: 2, headDim: 6, vocab: 11 };

function hfConfig(arch: string, d: Dims, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: [arch],
    hidden_size: d.dim,
    intermediate_size: d.hidden,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: d.headDim,
    vocab_size: d.vocab,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 500000,
    ...extra,
  };
}

async function writeCheckpoint(dir: string, config: unknown, tensors: Record<string, WritableTensor>): Promise<void> {
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
}

describe('HF decoder loader', () => {
  it('loads tiny-llava\'s language model as the permuted stories260K', async () => {
    const hf = await loadHfDecoder(join(modelsDir, 'tiny-llava'));
    const ref = parseLlama2cCheckpoint(readFileSync(stories260K.checkpoint));
    assert.deepEqual(hf.config, { ...ref.config, ropeStyle: 'rotate_half' });
    assert.equal(hf.lmHead, hf.tokenEmbedding, 'tied: the same array object');
    assert.deepEqual(hf.tokenEmbedding, ref.tokenEmbedding);
    assert.deepEqual(hf.finalNorm, ref.finalNorm);
    const c = ref.config;
    hf.layers.forEach((l, i) => {
      const r = ref.layers[i]!;
      assert.deepEqual(l.wq, interleavedToRotateHalf(r.wq, c.nHeads, c.headDim), `layer ${i} wq`);
      assert.deepEqual(l.wk, interleavedToRotateHalf(r.wk, c.nKvHeads, c.headDim), `layer ${i} wk`);
      for (const k of ['attnNorm', 'wv', 'wo', 'ffnNorm', 'wGate', 'wUp', 'wDown'] as const) assert.deepEqual(l[k], r[k], `layer ${i} ${k}`);
    });
  });

  it('loads Qwen2 with q/k/v biases, GQA, explicit head_dim and an untied head', async () => {
    await withTempDir(async (dir) => {
      const tensors = randomTensors(small, { bias: true });
      await writeCheckpoint(dir, hfConfig('Qwen2ForCausalLM', small, { tie_word_embeddings: false, use_sliding_window: false, sliding_window: 8 }), tensors);
      const w = await loadHfDecoder(dir);
      assert.deepEqual(w.config, {
        dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 6, vocabSize: 11,
        maxSeqLen: 64, ropeTheta: 500000, rmsNormEps: 1e-6, ropeStyle: 'rotate_half',
      });
      assert.notEqual(w.lmHead, w.tokenEmbedding);
      assert.deepEqual(w.lmHead, tensors['lm_head.weight']!.data);
      assert.deepEqual(w.layers[1]!.bk, tensors['model.layers.1.self_attn.k_proj.bias']!.data);
      assert.deepEqual(w.layers[1]!.wDown, tensors['model.layers.1.mlp.down_proj.weight']!.data);
    });
  });

  it('ties the head when tie_word_embeddings is set or lm_head is missing', async () => {
    await withTempDir(async (dir) => {
      await writeCheckpoint(dir, hfConfig('LlamaForCausalLM', small, { tie_word_embeddings: false }), randomTensors(small, { lmHead: null }));
      const w = await loadHfDecoder(dir);
      assert.equal(w.lmHead, w.tokenEmbedding);
      await writeCheckpoint(dir, hfConfig('LlamaForCausalLM', small, { tie_word_embeddings: true }), randomTensors(small));
      const w2 = await loadHfDecoder(dir);
      assert.equal(w2.lmHead, w2.tokenEmbedding);
    });
  });

  it('reads BF16 checkpoints and the newer LLaVA layout', async () => {
    await withTempDir(async (dir) => {
      const tensors = randomTensors(small, { prefix: 'model.language_model.' });
      for (const t of Object.values(tensors)) t.dtype = 'BF16';
      const config = { architectures: ['LlavaForConditionalGeneration'], text_config: { model_type: 'llama', ...hfConfig('LlamaForCausalLM', small) } };
      await writeCheckpoint(dir, config, tensors);
      const w = await loadHfDecoder(dir);
      const src = tensors['model.language_model.embed_tokens.weight']!.data;
      w.tokenEmbedding.forEach((v, i) => assert.ok(Math.abs(v - src[i]!) <= Math.abs(src[i]!) * 2 ** -8));
      assert.notEqual(w.lmHead, w.tokenEmbedding);
    });
  });

  it('clips Mistral\'s context to its sliding window', () => {
    const spec = parseHfDecoderConfig(hfConfig('MistralForCausalLM', small, { max_position_embeddings: 32768, sliding_window: 4096 }));
    assert.equal(spec.config.maxSeqLen, 4096);
    assert.equal(spec.slidingWindow, 4096);
    const none = parseHfDecoderConfig(hfConfig('MistralForCausalLM', small, { max_position_embeddings: 32768, sliding_window: null }));
    assert.equal(none.config.maxSeqLen, 32768);
    const qwen = parseHfDecoderConfig(hfConfig('Qwen2ForCausalLM', small, { max_position_embeddings: 32768, sliding_window: 4096 }));
    assert.equal(qwen.config.maxSeqLen, 32768, 'Qwen2 ignores the window unless use_sliding_window');
  });

  it('fills transformers defaults for sparse LLaVA text configs', () => {
    const spec = parseHfDecoderConfig({
      architectures: ['LlavaForConditionalGeneration'],
      text_config: { model_type: 'llama', max_position_embeddings: 4096, rms_norm_eps: 1e-5, vocab_size: 32064 },
      bos_token_id: 1,
      eos_token_id: 2,
    });
    assert.equal(spec.config.dim, 4096);
    assert.equal(spec.config.nKvHeads, 32);
    assert.equal(spec.config.headDim, 128);
    assert.equal(spec.tieWordEmbeddings, false);
    assert.deepEqual([spec.bosTokenId, spec.eosTokenIds], [1, [2]]);
  });

  it('rejects unsupported configs by name', () => {
    const base = hfConfig('LlamaForCausalLM', small);
    assert.throws(() => parseHfDecoderConfig({ ...base, rope_scaling: { rope_type: 'yarn', factor: 4 } }), /rope_scaling: rope type "yarn" is not supported \(default, linear and llama3 are\)/);
    assert.throws(() => parseHfDecoderConfig({ ...base, rope_scaling: { type: 'dynamic', factor: 2 } }), /rope type "dynamic" is not supported/);
    assert.throws(() => parseHfDecoderConfig({ ...base, rope_parameters: { rope_type: 'llama3', rope_theta: 1 } }), /rope_parameters \(llama3\): .*factor/s);
    assert.throws(() => parseHfDecoderConfig({ ...base, rope_scaling: { rope_type: 'linear', factor: 0 } }), /rope_scaling \(linear\): .*factor/s);
    assert.throws(() => parseHfDecoderConfig({ ...base, architectures: ['GPT2LMHeadModel'] }), /GPT2LMHeadModel is not supported \(supported: LlamaForCausalLM/);
    assert.throws(() => parseHfDecoderConfig({ ...base, hidden_act: 'gelu' }), /hidden_act gelu is not supported/);
    assert.throws(() => parseHfDecoderConfig({ ...base, attention_bias: true }), /attention_bias/);
    assert.throws(() => parseHfDecoderConfig({ ...base, hidden_size: '16' }), /config.json: .*hidden_size/s);
    assert.throws(() => parseHfDecoderConfig({ ...base, num_key_value_heads: 3 }), /not a multiple of num_key_value_heads 3/);
    assert.throws(() => parseHfDecoderConfig({ architectures: ['LlavaForConditionalGeneration'] }), /needs a text_config/);
    // Default rope entries are not scaling.
    assert.equal(parseHfDecoderConfig({ ...base, rope_scaling: { rope_type: 'default' } }).config.ropeTheta, 500000);
    assert.equal(parseHfDecoderConfig({ ...base, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }).config.ropeTheta, 1e6);
  });

  it('reads linear and Llama 3.1 RoPE scaling, from rope_scaling or from rope_parameters', () => {
    const base = hfConfig('LlamaForCausalLM', small);
    const llama3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const want = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    assert.deepEqual(parseHfDecoderConfig({ ...base, rope_scaling: { rope_type: 'llama3', ...llama3 } }).config.ropeScaling, want);
    const v5 = parseHfDecoderConfig({ ...base, rope_theta: undefined, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, ...llama3 } }).config;
    assert.deepEqual([v5.ropeTheta, v5.ropeScaling], [500000, want]);
    assert.deepEqual(parseHfDecoderConfig({ ...base, rope_scaling: { type: 'linear', factor: 2 } }).config.ropeScaling, { type: 'linear', factor: 2 });
    assert.equal(parseHfDecoderConfig(base).config.ropeScaling, undefined);
    // Both fields: they must agree.
    const both = { ...base, rope_scaling: { rope_type: 'llama3', ...llama3 }, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, ...llama3 } };
    assert.deepEqual(parseHfDecoderConfig(both).config.ropeScaling, want);
    assert.throws(() => parseHfDecoderConfig({ ...both, rope_scaling: { rope_type: 'default' } }), /rope_scaling and rope_parameters ask for different RoPE scaling/);
  });

  it('rejects tensors it would otherwise ignore, and wrong shapes', async () => {
    await withTempDir(async (dir) => {
      const tensors = randomTensors(small);
      tensors['model.layers.0.self_attn.o_proj.bias'] = { dtype: 'F32', shape: [small.dim], data: new Float32Array(small.dim) };
      await writeCheckpoint(dir, hfConfig('LlamaForCausalLM', small), tensors);
      await assert.rejects(loadHfDecoder(dir), /would ignore.*o_proj\.bias/);
      const withHeadBias = randomTensors(small);
      withHeadBias['lm_head.bias'] = { dtype: 'F32', shape: [small.vocab], data: new Float32Array(small.vocab) };
      await writeCheckpoint(dir, hfConfig('LlamaForCausalLM', small), withHeadBias);
      await assert.rejects(loadHfDecoder(dir), /would ignore.*lm_head\.bias/);

      await writeCheckpoint(dir, hfConfig('LlamaForCausalLM', { ...small, hidden: 25 }), randomTensors(small));
      await assert.rejects(loadHfDecoder(dir), /gate_proj\.weight: stored shape \[24, 16\], but config.json implies \[25, 16\]/);

      await writeCheckpoint(dir, hfConfig('Qwen2ForCausalLM', small), randomTensors(small));
      await assert.rejects(loadHfDecoder(dir), /no tensor named model\.layers\.0\.self_attn\.q_proj\.bias/);
    });
  });
});
