/**
 * llama2.c legacy (v0) checkpoints, as read by karpathy/llama2.c run.c: a 7 x int32 header
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), then f32 arrays.
 * A negative vocab_size means the classifier is stored separately (unshared).
 */
import { checkDecoderWeights, type DecoderWeights, type LayerWeights } from './decoder-weights.js';

const HEADER_BYTES = 7 * 4;

export function parseLlama2cCheckpoint(bytes: Uint8Array): DecoderWeights {
  if (bytes.byteLength < HEADER_BYTES) throw new Error('llama2.c checkpoint: file shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = Array.from({ length: 7 }, (_, i) => view.getInt32(i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h as [number, number, number, number, number, number, number];
  if (h.slice(0, 5).some((v) => v <= 0) || seqLen <= 0 || rawVocab === 0 || dim % nHeads !== 0) {
    throw new Error(`llama2.c checkpoint: implausible header [${h.join(', ')}] (v1/v2 "ak42" files are not supported)`);
  }
  const shared = rawVocab > 0;
  const vocabSize = Math.abs(rawVocab);
  const headDim = dim / nHeads;
  const kvDim = nKvHeads * headDim;

  // Copy the float payload once so every tensor is an aligned view regardless of the input's offset.
  // (Uint8Array's slice, not Buffer's: Buffer#slice returns a view of the shared pool.)
  const floats = new Float32Array(Uint8Array.prototype.slice.call(bytes, HEADER_BYTES).buffer);
  let off = 0;
  const take = (n: number): Float32Array => {
    if (off + n > floats.length) throw new Error('llama2.c checkpoint: file is truncated');
    const a = floats.subarray(off, off + n);
    off += n;
    return a;
  };
  const perLayer = (n: number) => Array.from({ length: nLayers }, () => take(n));

  const tokenEmbedding = take(vocabSize * dim);
  const rmsAtt = perLayer(dim);
  const wq = perLayer(dim * dim);
  const wk = perLayer(kvDim * dim);
  const wv = perLayer(kvDim * dim);
  const wo = perLayer(dim * dim);
  const rmsFfn = perLayer(dim);
  const w1 = perLayer(hiddenDim * dim);
  const w2 = perLayer(dim * hiddenDim);
  const w3 = perLayer(hiddenDim * dim);
  const finalNorm = take(dim);
  take(seqLen * (headDim / 2)); // legacy freq_cis_real, unused by run.c
  take(seqLen * (headDim / 2)); // legacy freq_cis_imag
  const lmHead = shared ? tokenEmbedding : take(vocabSize * dim);

  const layers: LayerWeights[] = rmsAtt.map((attnNorm, l) => ({
    attnNorm,
    wq: wq[l]!,
    wk: wk[l]!,
    wv: wv[l]!,
    wo: wo[l]!,
    ffnNorm: rmsFfn[l]!,
    wGate: w1[l]!,
    wDown: w2[l]!,
    wUp: w3[l]!,
  }));
  const weights: DecoderWeights = {
    config: {
      dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize,
      maxSeqLen: seqLen, ropeTheta: 10000, rmsNormEps: 1e-5, ropeStyle: 'interleaved',
    },
    tokenEmbedding, layers, finalNorm, lmHead,
  };
  checkDecoderWeights(weights);
  return weights;
}
