/**
 * llama2.c legacy (v0) checkpoints, as read by karpathy/llama2.c run.c: a 7 x int32 header
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), then f32 arrays.
 * A negative vocab_size means the classifier is stored separately (unshared).
 *
 * `openLlama2cCheckpoint` reads a file of any size one tensor at a time (positioned reads at
 * offsets computed from the header; no whole-file buffer, which Node caps at 4 GiB anyway);
 * `parseLlama2cCheckpoint` takes a file already in memory.
 */
import { open } from 'node:fs/promises';
import { checkDecoderWeights, type DecoderConfig, type DecoderWeights, type LayerWeights } from './decoder-weights.js';
import { refName, tensorLength, type DecoderCheckpoint, type DecoderTensorRef, type LayerTensor } from './decoder-checkpoint.js';
import { readAt } from './read-at.js';

export const HEADER_BYTES = 7 * 4;

export interface Llama2cLayout {
  config: DecoderConfig;
  shared: boolean;
  /** Byte offset of each tensor, by refName. */
  offsets: Map<string, number>;
  /** Bytes the header says the file must have. */
  expectedBytes: number;
}

/** Per-layer arrays in file order (run.c's memory_map_weights); the llama2.c names in comments. */
const FILE_ORDER: readonly LayerTensor[] = [
  'attnNorm', // rms_att_weight
  'wq', 'wk', 'wv', 'wo',
  'ffnNorm', // rms_ffn_weight
  'wGate', // w1
  'wDown', // w2
  'wUp', // w3
];

function layout(header: Uint8Array, source: string): Llama2cLayout {
  if (header.byteLength < HEADER_BYTES) throw new Error(`${source}: llama2.c checkpoint: file shorter than its header`);
  const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const h = Array.from({ length: 7 }, (_, i) => view.getInt32(i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h as [number, number, number, number, number, number, number];
  if (h.slice(0, 5).some((v) => v <= 0) || seqLen <= 0 || rawVocab === 0 || dim % nHeads !== 0) {
    throw new Error(`${source}: llama2.c checkpoint: implausible header [${h.join(', ')}] (v1/v2 "ak42" files are not supported)`);
  }
  // Checked here, before a weight store is built from the file: later they fail deep in compile.
  if ((dim / nHeads) % 2 !== 0) throw new Error(`${source}: llama2.c checkpoint: head size ${dim / nHeads} (dim ${dim} / n_heads ${nHeads}) is odd, RoPE needs pairs`);
  if (nHeads % nKvHeads !== 0) {
    throw new Error(`${source}: llama2.c checkpoint: n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  }
  return llama2cLayout({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(rawVocab), maxSeqLen: seqLen }, rawVocab > 0);
}

/** The shape a llama2.c header holds. */
export type Llama2cShape = Pick<DecoderConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'vocabSize' | 'maxSeqLen'>;

/** Where each tensor of a llama2.c file of this shape lies. */
export function llama2cLayout(shape: Llama2cShape, shared: boolean): Llama2cLayout {
  const { nLayers, maxSeqLen: seqLen } = shape;
  const headDim = shape.dim / shape.nHeads;
  const config: DecoderConfig = { ...shape, headDim, ropeTheta: 10000, rmsNormEps: 1e-5, ropeStyle: 'interleaved' };
  const offsets = new Map<string, number>();
  // Offsets in bytes as plain numbers: exact far beyond any checkpoint (2^53).
  let at = HEADER_BYTES;
  const place = (ref: DecoderTensorRef) => {
    offsets.set(refName(ref), at);
    at += tensorLength(config, ref.tensor) * 4;
  };
  place({ tensor: 'tokenEmbedding' });
  for (const tensor of FILE_ORDER) for (let layer = 0; layer < nLayers; layer++) place({ tensor, layer });
  place({ tensor: 'finalNorm' });
  at += 2 * seqLen * (headDim / 2) * 4; // legacy freq_cis_real and freq_cis_imag, unused by run.c
  if (shared) offsets.set('lmHead', offsets.get('tokenEmbedding')!);
  else place({ tensor: 'lmHead' });
  return { config, shared, offsets, expectedBytes: at };
}

export function offsetOf(l: Llama2cLayout, ref: DecoderTensorRef, source: string): number {
  const at = l.offsets.get(refName(ref));
  if (at === undefined) throw new Error(`${source}: a llama2.c checkpoint has no ${refName(ref)}`);
  return at;
}

/** Opens a checkpoint for reading tensor by tensor. Close it when done: it holds a file handle. */
export async function openLlama2cCheckpoint(path: string): Promise<DecoderCheckpoint> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const l = layout(await readAt(fh, 0, Math.min(HEADER_BYTES, size)), path);
    if (size < l.expectedBytes) throw new Error(`${path}: llama2.c checkpoint: file is truncated (${size} bytes, the header needs ${l.expectedBytes})`);
    return {
      config: l.config,
      tiedClassifier: l.shared,
      hasQkvBias: false,
      files: [path],
      async read(ref) {
        const bytes = await readAt(fh, offsetOf(l, ref, path), tensorLength(l.config, ref.tensor) * 4);
        // A fresh, 0-offset buffer: the floats are a view of it, no second copy. (Little-endian
        // hosts only, as run.c's mmap.)
        return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** A checkpoint already in memory. Tensors are views of one aligned copy of the payload. */
export function parseLlama2cCheckpoint(bytes: Uint8Array): DecoderWeights {
  const l = layout(bytes, 'llama2.c checkpoint');
  if (bytes.byteLength < l.expectedBytes) throw new Error('llama2.c checkpoint: file is truncated');
  // Copy once so every tensor is an aligned view regardless of the input's offset.
  // (Uint8Array's slice, not Buffer's: Buffer#slice returns a view of the shared pool.)
  const payload = Uint8Array.prototype.slice.call(bytes, 0, l.expectedBytes) as Uint8Array;
  const view = (ref: DecoderTensorRef) => new Float32Array(payload.buffer, offsetOf(l, ref, 'llama2.c checkpoint'), tensorLength(l.config, ref.tensor));
  const layers: LayerWeights[] = Array.from({ length: l.config.nLayers }, (_, layer) => {
    const t = (tensor: LayerTensor) => view({ tensor, layer });
    return {
      attnNorm: t('attnNorm'), wq: t('wq'), wk: t('wk'), wv: t('wv'), wo: t('wo'),
      ffnNorm: t('ffnNorm'), wGate: t('wGate'), wDown: t('wDown'), wUp: t('wUp'),
    };
  });
  const tokenEmbedding = view({ tensor: 'tokenEmbedding' });
  const weights: DecoderWeights = {
    config: l.config,
    tokenEmbedding,
    layers,
    finalNorm: view({ tensor: 'finalNorm' }),
    lmHead: l.shared ? tokenEmbedding : view({ tensor: 'lmHead' }),
  };
  checkDecoderWeights(weights);
  return weights;
}
