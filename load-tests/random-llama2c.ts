/**
 * Seeded random llama2.c checkpoints of real model shapes (the TinyStories 15M and 110M models, the
 * TinyLlama 1.1B shape), written to disk tensor by tensor, with a synthetic 32,000-piece llama2.c
 * tokenizer beside them. Not trained models: their text is noise, but their files, graphs and per-step
 * costs are those of real models of these shapes.
 *
 * Random bytes come from AES-128-CTR keyed by the seed (node:crypto): seeded, identical on every
 * machine, and fast enough for a billion weights (a JS generator at tens of ns per draw is not).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeLlama2cCheckpoint } from '../models/checkpoint/llama2c-writer.js';
import type { Llama2cShape } from '../models/checkpoint/llama2c.js';
import { refName, type DecoderTensorRef } from '../models/checkpoint/decoder-checkpoint.js';

export interface RandomModelShape extends Llama2cShape {
  /** The classifier is the embedding table. */
  shared: boolean;
}

export const SCALE_SHAPES = {
  '15M': { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, maxSeqLen: 256, shared: true },
  '110M': { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, maxSeqLen: 1024, shared: true },
  '1.1B': { dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4, vocabSize: 32000, maxSeqLen: 2048, shared: false },
} as const satisfies Record<string, RandomModelShape>;

/** Bytes of the llama2.c file of a shape (f32 weights, plus run.c's unused RoPE tables). */
export function checkpointBytes(s: RandomModelShape): number {
  const hd = s.dim / s.nHeads;
  const kv = s.nKvHeads * hd;
  const layer = 2 * s.dim + 2 * s.dim * s.dim + 2 * kv * s.dim + 3 * s.hiddenDim * s.dim;
  return 28 + 4 * (s.vocabSize * s.dim * (s.shared ? 1 : 2) + s.nLayers * layer + s.dim + s.maxSeqLen * hd);
}

/** Uniforms in ±scale, seeded by a string, in chunks. */
export function* seededUniforms(seed: string, length: number, scale: number, chunk = 1 << 22): Generator<Float32Array> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  for (let done = 0; done < length; done += chunk) {
    const n = Math.min(chunk, length - done);
    const bytes = new Uint8Array(cipher.update(new Uint8Array(n * 4)));
    const u = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
    const out = new Float32Array(n);
    const k = (2 * scale) / 4294967296;
    for (let i = 0; i < n; i++) out[i] = u[i]! * k - scale;
    yield out;
  }
}

export interface RandomCheckpointOptions {
  seed?: number;
  /** Tensors to leave as holes (zeros): a huge checkpoint written in seconds, taking no disk space. */
  hole?: (ref: DecoderTensorRef) => boolean;
}

/**
 * Writes `<dir>/model.bin` and `<dir>/tok32000.bin` (or the vocabulary size's name). Weights are
 * uniform in ±1/√fan-in (a standard init, so activations stay finite through the layers), norm
 * gains 1, and the classifier scaled up so logits are spread like a trained model's rather than flat.
 */
export async function writeRandomModel(dir: string, shape: RandomModelShape, opts: RandomCheckpointOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'model.bin');
  const seed = opts.seed ?? 1;
  await writeLlama2cCheckpoint(path, shape, shape.shared, (ref, length) => {
    if (opts.hole?.(ref)) return null;
    if (ref.tensor === 'attnNorm' || ref.tensor === 'ffnNorm' || ref.tensor === 'finalNorm') return [new Float32Array(length).fill(1)];
    const fanIn = ref.tensor === 'wDown' ? shape.hiddenDim : shape.dim;
    const classifier = ref.tensor === 'lmHead' || (shape.shared && ref.tensor === 'tokenEmbedding');
    return seededUniforms(`${seed}:${refName(ref)}`, length, (classifier ? 8 : 1) / Math.sqrt(fanIn));
  });
  await writeFile(join(dir, `tok${shape.vocabSize}.bin`), syntheticTokenizer(shape.vocabSize));
  return path;
}

/** A model folder from the cache when its checkpoint is already there (same shape and seed), else written. */
export async function cachedRandomModel(cacheDir: string, name: string, shape: RandomModelShape, seed = 1): Promise<string> {
  const dir = join(cacheDir, `${name}-seed${seed}`);
  const have = await stat(join(dir, 'model.bin')).then((s) => s.size === checkpointBytes(shape), () => false);
  const tok = await stat(join(dir, `tok${shape.vocabSize}.bin`)).then(() => true, () => false);
  if (!have || !tok) await writeRandomModel(dir, shape, { seed });
  return dir;
}

/**
 * A llama2.c tokenizer file with `vocab` pieces in run.c's layout: `<unk>`, BOS, EOS, the 256 byte
 * pieces, then lower-case letter strings ("a", "b", …, "aa", …) scored so shorter pieces merge first.
 */
export function syntheticTokenizer(vocab: number): Uint8Array {
  const pieces: string[] = ['<unk>', '\n<s>\n', '\n</s>\n'];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  for (let n = 0; pieces.length < vocab; n++) {
    let s = '';
    for (let k = n; ; k = Math.floor(k / 26) - 1) {
      s = String.fromCharCode(97 + (k % 26)) + s;
      if (k < 26) break;
    }
    pieces.push(s);
  }
  const enc = new TextEncoder();
  const encoded = pieces.slice(0, vocab).map((p) => enc.encode(p));
  const size = 4 + encoded.reduce((n, e) => n + 8 + e.byteLength, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.max(...encoded.map((e) => e.byteLength)), true);
  let at = 4;
  encoded.forEach((e, id) => {
    view.setFloat32(at, -id, true);
    view.setInt32(at + 4, e.byteLength, true);
    out.set(e, at + 8);
    at += 8 + e.byteLength;
  });
  return out;
}
