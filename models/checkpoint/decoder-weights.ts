/**
 * The architecture-neutral description of a Llama-family decoder that every checkpoint loader
 * produces and every consumer (graph compiler, float64 reference) reads.
 *
 * Matrices are row-major `[out, in]`, the nn.Linear / llama2.c convention, so `y[i] = Σ_j W[i*in + j] x[j]`.
 * q/k rows are always in the layout that `ropeStyle` names: loaders never permute silently.
 */
export type RopeStyle = 'interleaved' | 'rotate_half';

/**
 * RoPE frequency scaling for contexts beyond the pre-training length, named as transformers names
 * it (`rope_scaling.rope_type`): `linear` divides every frequency by `factor`; `llama3` (Llama 3.1
 * and later) divides only the low frequencies and blends the band between. See models/compiler/rope.ts.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface DecoderConfig {
  /** Residual width. */
  dim: number;
  /** SwiGLU inner width. */
  hiddenDim: number;
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (GQA when smaller than nHeads). */
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Longest sequence the checkpoint was trained for; the default KV capacity. */
  maxSeqLen: number;
  ropeTheta: number;
  /** Absent: unscaled RoPE. */
  ropeScaling?: RopeScaling;
  rmsNormEps: number;
  /** llama2.c rotates interleaved pairs (i, i+1); HF rotates halves (i, i + hd/2). */
  ropeStyle: RopeStyle;
}

export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Float32Array; // [nHeads*hd, dim]
  wk: Float32Array; // [nKv*hd, dim]
  wv: Float32Array; // [nKv*hd, dim]
  wo: Float32Array; // [dim, nHeads*hd]
  /** Qwen2 has q/k/v biases; Llama and Mistral do not. */
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  ffnNorm: Float32Array; // [dim]
  wGate: Float32Array; // w1 [hidden, dim]
  wDown: Float32Array; // w2 [dim, hidden]
  wUp: Float32Array; // w3 [hidden, dim]
}

export interface DecoderWeights {
  config: DecoderConfig;
  tokenEmbedding: Float32Array; // [vocab, dim]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [dim]
  /** [vocab, dim]; the same array object as tokenEmbedding when the classifier is tied. */
  lmHead: Float32Array;
}

/** Throws when an array's length disagrees with the config, naming the tensor: loaders call it once. */
export function checkDecoderWeights(w: DecoderWeights): void {
  const c = w.config;
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const expect = (name: string, a: Float32Array | undefined, n: number) => {
    if (a && a.length !== n) throw new Error(`${name}: expected ${n} floats, found ${a.length}`);
  };
  if (c.nHeads % c.nKvHeads !== 0) throw new Error(`nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
  expect('tokenEmbedding', w.tokenEmbedding, c.vocabSize * c.dim);
  expect('lmHead', w.lmHead, c.vocabSize * c.dim);
  expect('finalNorm', w.finalNorm, c.dim);
  if (w.layers.length !== c.nLayers) throw new Error(`expected ${c.nLayers} layers, found ${w.layers.length}`);
  w.layers.forEach((l, i) => {
    expect(`layers.${i}.attnNorm`, l.attnNorm, c.dim);
    expect(`layers.${i}.wq`, l.wq, q * c.dim);
    expect(`layers.${i}.wk`, l.wk, kv * c.dim);
    expect(`layers.${i}.wv`, l.wv, kv * c.dim);
    expect(`layers.${i}.wo`, l.wo, c.dim * q);
    expect(`layers.${i}.bq`, l.bq, q);
    expect(`layers.${i}.bk`, l.bk, kv);
    expect(`layers.${i}.bv`, l.bv, kv);
    expect(`layers.${i}.ffnNorm`, l.ffnNorm, c.dim);
    expect(`layers.${i}.wGate`, l.wGate, c.hiddenDim * c.dim);
    expect(`layers.${i}.wDown`, l.wDown, c.dim * c.hiddenDim);
    expect(`layers.${i}.wUp`, l.wUp, c.hiddenDim * c.dim);
  });
}
