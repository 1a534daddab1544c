/**
 * The decoder's served weights: the tensors its graph reads, by name, derived from a checkpoint's
 * DecoderWeights. q/k/v are fused into one linear layer and gate/up into another (one MatMul each
 * instead of three and two: tiny models are op-overhead bound). A tied classifier is the embedding
 * array itself, so the two names share one stored tensor.
 *
 * Served q/k rows are always in llama2.c's interleaved RoPE layout: HF's rotate_half rows are put
 * back in that order (the inverse of transformers' conversion permutation), so the graph always
 * rotates interleaved pairs. The rotation is the same; only the order of a head's dimensions
 * changes, and with it the summation order of q·k. This makes an HF conversion of a llama2.c model
 * (tiny-llava's language model is stories260K) compute bit for bit what the original does.
 */
import type { DecoderWeights } from '../checkpoint/decoder-weights.js';
import type { InMemoryWeight } from '../onnx/weights.js';

export const DECODER_WEIGHT = {
  embedTokens: 'embed_tokens',
  lmHead: 'lm_head',
  finalNorm: 'final_norm',
  attnNorm: (l: number) => `layers.${l}.attn_norm`,
  qkvProj: (l: number) => `layers.${l}.qkv_proj`,
  qkvBias: (l: number) => `layers.${l}.qkv_bias`,
  oProj: (l: number) => `layers.${l}.o_proj`,
  ffnNorm: (l: number) => `layers.${l}.ffn_norm`,
  gateUpProj: (l: number) => `layers.${l}.gate_up_proj`,
  downProj: (l: number) => `layers.${l}.down_proj`,
} as const;

export function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Rows of one projection reordered from rotate_half (pair p = dims p and p + hd/2 of each head) to
 * interleaved (pair p = dims 2p and 2p + 1); `width` floats per row (1 for a bias).
 */
export function toInterleavedRows(a: Float32Array, heads: number, headDim: number, width: number): Float32Array {
  const out = new Float32Array(a.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < headDim; j++) {
      const from = h * headDim + (j % 2 === 0 ? j / 2 : half + (j - 1) / 2);
      out.set(a.subarray(from * width, (from + 1) * width), (h * headDim + j) * width);
    }
  }
  return out;
}

export function decoderServedWeights(w: DecoderWeights): Map<string, InMemoryWeight> {
  const c = w.config;
  const interleave = (a: Float32Array, heads: number, width: number) => (c.ropeStyle === 'rotate_half' ? toInterleavedRows(a, heads, c.headDim, width) : a);
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const m = new Map<string, InMemoryWeight>();
  const tensor = (name: string, dims: number[], data: Float32Array) => m.set(name, { kind: 'tensor', dims, data });
  const linear = (name: string, out: number, inDim: number, data: Float32Array) => m.set(name, { kind: 'linear', dims: [out, inDim], data });

  tensor(DECODER_WEIGHT.embedTokens, [c.vocabSize, c.dim], w.tokenEmbedding);
  tensor(DECODER_WEIGHT.lmHead, [c.vocabSize, c.dim], w.lmHead);
  tensor(DECODER_WEIGHT.finalNorm, [c.dim], w.finalNorm);
  w.layers.forEach((lw, l) => {
    tensor(DECODER_WEIGHT.attnNorm(l), [c.dim], lw.attnNorm);
    // [out, in] row-major: stacking the rows of wq, wk, wv is concatenating their arrays.
    linear(DECODER_WEIGHT.qkvProj(l), q + 2 * kv, c.dim, concat([interleave(lw.wq, c.nHeads, c.dim), interleave(lw.wk, c.nKvHeads, c.dim), lw.wv]));
    if (lw.bq && lw.bk && lw.bv) tensor(DECODER_WEIGHT.qkvBias(l), [q + 2 * kv], concat([interleave(lw.bq, c.nHeads, 1), interleave(lw.bk, c.nKvHeads, 1), lw.bv]));
    linear(DECODER_WEIGHT.oProj(l), c.dim, q, lw.wo);
    tensor(DECODER_WEIGHT.ffnNorm(l), [c.dim], lw.ffnNorm);
    linear(DECODER_WEIGHT.gateUpProj(l), 2 * c.hiddenDim, c.dim, concat([lw.wGate, lw.wUp]));
    linear(DECODER_WEIGHT.downProj(l), c.dim, c.hiddenDim, lw.wDown);
  });
  return m;
}
