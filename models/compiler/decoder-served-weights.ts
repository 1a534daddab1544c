/**
 * The decoder's served weights: the tensors its graph reads, by name, derived from a checkpoint.
 * q/k/v are fused into one linear layer and gate/up into another (one MatMul each instead of three
 * and two: tiny models are op-overhead bound). The classifier is a linear layer of its own even
 * when tied: the embedding is gathered row by row, the classifier multiplied (and in compact formats
 * quantized), so the two are stored in the layout each use wants.
 *
 * One plan (served name → checkpoint tensors) feeds both forms: arrays in memory for inline graphs,
 * and lazy reads for the on-disk weight store, which reads one served weight at a time.
 *
 * Served q/k rows are always in llama2.c's interleaved RoPE layout: HF's rotate_half rows are put
 * back in that order (the inverse of transformers' conversion permutation), so the graph always
 * rotates interleaved pairs. The rotation is the same; only the order of a head's dimensions
 * changes, and with it the summation order of q·k. This makes an HF conversion of a llama2.c model
 * (tiny-llava's language model is stories260K) compute bit for bit what the original does.
 */
import type { DecoderConfig, DecoderWeights } from '../checkpoint/decoder-weights.js';
import { type DecoderCheckpoint, type DecoderTensorRef, type LayerTensor } from '../checkpoint/decoder-checkpoint.js';
import type { InMemoryWeight, ServedWeights, WeightSpec } from '../onnx/weights.js';

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

interface PlannedWeight {
  spec: WeightSpec;
  /** Concatenated in this order (for `[out, in]` row-major matrices, stacking rows). */
  parts: DecoderTensorRef[];
}

function decoderWeightPlan(c: DecoderConfig, hasQkvBias: boolean): PlannedWeight[] {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const plan: PlannedWeight[] = [];
  const tensor = (name: string, dims: number[], ...parts: DecoderTensorRef[]) => plan.push({ spec: { kind: 'tensor', name, dims }, parts });
  const linear = (name: string, out: number, inDim: number, ...parts: DecoderTensorRef[]) => plan.push({ spec: { kind: 'linear', name, out, in: inDim }, parts });
  const at = (layer: number, ...tensors: LayerTensor[]) => tensors.map((t): DecoderTensorRef => ({ tensor: t, layer }));

  tensor(DECODER_WEIGHT.embedTokens, [c.vocabSize, c.dim], { tensor: 'tokenEmbedding' });
  for (let l = 0; l < c.nLayers; l++) {
    tensor(DECODER_WEIGHT.attnNorm(l), [c.dim], ...at(l, 'attnNorm'));
    linear(DECODER_WEIGHT.qkvProj(l), q + 2 * kv, c.dim, ...at(l, 'wq', 'wk', 'wv'));
    if (hasQkvBias) tensor(DECODER_WEIGHT.qkvBias(l), [q + 2 * kv], ...at(l, 'bq', 'bk', 'bv'));
    linear(DECODER_WEIGHT.oProj(l), c.dim, q, ...at(l, 'wo'));
    tensor(DECODER_WEIGHT.ffnNorm(l), [c.dim], ...at(l, 'ffnNorm'));
    linear(DECODER_WEIGHT.gateUpProj(l), 2 * c.hiddenDim, c.dim, ...at(l, 'wGate', 'wUp'));
    linear(DECODER_WEIGHT.downProj(l), c.dim, c.hiddenDim, ...at(l, 'wDown'));
  }
  tensor(DECODER_WEIGHT.finalNorm, [c.dim], { tensor: 'finalNorm' });
  linear(DECODER_WEIGHT.lmHead, c.vocabSize, c.dim, { tensor: 'lmHead' });
  return plan;
}

export function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const dimsOf = (s: WeightSpec): number[] => (s.kind === 'linear' ? [s.out, s.in] : s.dims);

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

/** A checkpoint tensor as served: q/k rows (and biases) of a rotate_half checkpoint go interleaved. */
function servedPart(c: DecoderConfig, ref: DecoderTensorRef, data: Float32Array): Float32Array {
  if (c.ropeStyle !== 'rotate_half') return data;
  switch (ref.tensor) {
    case 'wq': return toInterleavedRows(data, c.nHeads, c.headDim, c.dim);
    case 'wk': return toInterleavedRows(data, c.nKvHeads, c.headDim, c.dim);
    case 'bq': return toInterleavedRows(data, c.nHeads, c.headDim, 1);
    case 'bk': return toInterleavedRows(data, c.nKvHeads, c.headDim, 1);
    default: return data;
  }
}

/** Served weights read lazily from a checkpoint: each read holds one served tensor's parts. */
export function decoderServedFromCheckpoint(ckpt: DecoderCheckpoint): ServedWeights {
  return new Map(decoderWeightPlan(ckpt.config, ckpt.hasQkvBias).map(({ spec, parts }) => [
    spec.name,
    {
      kind: spec.kind,
      dims: dimsOf(spec),
      classifier: spec.name === DECODER_WEIGHT.lmHead,
      read: async () => {
        const arrays: Float32Array[] = [];
        for (const p of parts) arrays.push(servedPart(ckpt.config, p, await ckpt.read(p)));
        return concat(arrays);
      },
    },
  ]));
}

/** Served weights as arrays in memory (inline graphs: tests and small models). */
export function decoderServedWeights(w: DecoderWeights): Map<string, InMemoryWeight> {
  const hasQkvBias = w.layers.every((l) => l.bq && l.bk && l.bv);
  const array = (ref: DecoderTensorRef): Float32Array => ('layer' in ref ? w.layers[ref.layer]![ref.tensor]! : w[ref.tensor]);
  return new Map(decoderWeightPlan(w.config, hasQkvBias).map(({ spec, parts }) => [
    spec.name,
    { kind: spec.kind, dims: dimsOf(spec), data: concat(parts.map((p) => servedPart(w.config, p, array(p)))), classifier: spec.name === DECODER_WEIGHT.lmHead },
  ]));
}
