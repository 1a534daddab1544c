/**
 * Writes llama2.c v0 checkpoints tensor by tensor (positioned writes, no whole-file buffer), for
 * benchmarks and tests that need real-size files. A tensor the source does not provide stays a hole:
 * zeros on disk, and no disk space on filesystems with sparse files.
 */
import { open } from 'node:fs/promises';
import { HEADER_BYTES, llama2cLayout, offsetOf, type Llama2cShape } from './llama2c.js';
import { LAYER_TENSORS, tensorLength, type DecoderTensorRef } from './decoder-checkpoint.js';

/** Yields a tensor in chunks (large tensors need not be in memory at once), or null for zeros. */
export type TensorChunks = (ref: DecoderTensorRef, length: number) => Iterable<Float32Array> | null;

export async function writeLlama2cCheckpoint(path: string, shape: Llama2cShape, shared: boolean, chunks: TensorChunks): Promise<void> {
  const l = llama2cLayout(shape, shared);
  const fh = await open(path, 'w');
  try {
    const header = new Int32Array([shape.dim, shape.hiddenDim, shape.nLayers, shape.nHeads, shape.nKvHeads, shared ? shape.vocabSize : -shape.vocabSize, shape.maxSeqLen]);
    await fh.write(new Uint8Array(header.buffer), 0, HEADER_BYTES, 0);
    const refs: DecoderTensorRef[] = [{ tensor: 'tokenEmbedding' }, { tensor: 'finalNorm' }, ...(shared ? [] : [{ tensor: 'lmHead' } as const])];
    for (let layer = 0; layer < shape.nLayers; layer++) {
      for (const tensor of LAYER_TENSORS) if (!['bq', 'bk', 'bv'].includes(tensor)) refs.push({ tensor, layer });
    }
    for (const ref of refs) {
      let at = offsetOf(l, ref, path);
      const length = tensorLength(l.config, ref.tensor);
      let written = 0;
      for (const chunk of chunks(ref, length) ?? []) {
        const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        for (let done = 0; done < bytes.byteLength;) {
          const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.byteLength - done, 1 << 30), at + done);
          done += bytesWritten;
        }
        at += bytes.byteLength;
        written += chunk.length;
      }
      if (written !== 0 && written !== length) throw new Error(`${path}: ${written} values written for a tensor of ${length}`);
    }
    await fh.truncate(l.expectedBytes);
  } finally {
    await fh.close();
  }
}
