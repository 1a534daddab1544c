/**
 * A decoder checkpoint opened for reading, one tensor at a time. Loaders describe the file (shape,
 * tied classifier, biases) up front from its header, then hand out each tensor on demand with
 * positioned reads, so a checkpoint of any size loads with about one tensor in memory at a time.
 * `readDecoderWeights` reads everything into a DecoderWeights for the consumers that want it all
 * (the float64 reference, tests, conversion).
 */
import { checkDecoderWeights, type DecoderConfig, type DecoderWeights, type LayerWeights } from './decoder-weights.js';

export const LAYER_TENSORS = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'bq', 'bk', 'bv', 'ffnNorm', 'wGate', 'wDown', 'wUp'] as const;
export type LayerTensor = (typeof LAYER_TENSORS)[number];
export type ModelTensor = 'tokenEmbedding' | 'finalNorm' | 'lmHead';

/** One checkpoint tensor by its role: a per-layer tensor names its layer. */
export type DecoderTensorRef = { tensor: ModelTensor } | { tensor: LayerTensor; layer: number };

export interface DecoderCheckpoint {
  readonly config: DecoderConfig;
  /** The classifier is the embedding table; `lmHead` reads the same tensor. */
  readonly tiedClassifier: boolean;
  /** q/k/v biases are present (Qwen2). */
  readonly hasQkvBias: boolean;
  /** The files whose bytes are the weights (the compiled-graph cache is keyed by their content). */
  readonly files: readonly string[];
  /** One tensor as float32, freshly read: callers may keep or drop it. */
  read(ref: DecoderTensorRef): Promise<Float32Array>;
  close(): Promise<void>;
}

export const refName = (ref: DecoderTensorRef): string => ('layer' in ref ? `layers.${ref.layer}.${ref.tensor}` : ref.tensor);

/** Elements of a tensor, from the config alone (the same table every loader checks against). */
export function tensorLength(c: DecoderConfig, tensor: LayerTensor | ModelTensor): number {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  switch (tensor) {
    case 'tokenEmbedding':
    case 'lmHead':
      return c.vocabSize * c.dim;
    case 'finalNorm':
    case 'attnNorm':
    case 'ffnNorm':
      return c.dim;
    case 'wq':
      return q * c.dim;
    case 'wk':
    case 'wv':
      return kv * c.dim;
    case 'wo':
      return c.dim * q;
    case 'bq':
      return q;
    case 'bk':
    case 'bv':
      return kv;
    case 'wGate':
    case 'wUp':
    case 'wDown':
      return c.hiddenDim * c.dim;
  }
}

/** A checkpoint over arrays already in memory (tests, converted models). */
export function inMemoryCheckpoint(w: DecoderWeights): DecoderCheckpoint {
  const layer = (ref: { tensor: LayerTensor; layer: number }): Float32Array => {
    const a = w.layers[ref.layer]?.[ref.tensor];
    if (!a) throw new Error(`the checkpoint has no ${refName(ref)}`);
    return a;
  };
  return {
    config: w.config,
    tiedClassifier: w.lmHead === w.tokenEmbedding,
    hasQkvBias: w.layers.every((l) => l.bq && l.bk && l.bv),
    files: [],
    read: async (ref) => ('layer' in ref ? layer(ref) : w[ref.tensor]),
    close: async () => {},
  };
}

/** Reads every tensor into memory (the whole model at once: for small models and tests). */
export async function readDecoderWeights(ckpt: DecoderCheckpoint): Promise<DecoderWeights> {
  const c = ckpt.config;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const t = (tensor: LayerTensor) => ckpt.read({ tensor, layer: l });
    const layer: LayerWeights = {
      attnNorm: await t('attnNorm'), wq: await t('wq'), wk: await t('wk'), wv: await t('wv'), wo: await t('wo'),
      ffnNorm: await t('ffnNorm'), wGate: await t('wGate'), wDown: await t('wDown'), wUp: await t('wUp'),
    };
    if (ckpt.hasQkvBias) {
      layer.bq = await t('bq');
      layer.bk = await t('bk');
      layer.bv = await t('bv');
    }
    layers.push(layer);
  }
  const tokenEmbedding = await ckpt.read({ tensor: 'tokenEmbedding' });
  const weights: DecoderWeights = {
    config: { ...c },
    tokenEmbedding,
    layers,
    finalNorm: await ckpt.read({ tensor: 'finalNorm' }),
    lmHead: ckpt.tiedClassifier ? tokenEmbedding : await ckpt.read({ tensor: 'lmHead' }),
  };
  checkDecoderWeights(weights);
  return weights;
}
