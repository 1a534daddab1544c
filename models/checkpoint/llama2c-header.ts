/** The 7 × int32 llama2.c v0 header alone, for callers that need the shape without the weights. */
import { open } from 'node:fs/promises';

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Always positive; `sharedClassifier` keeps the sign's meaning. */
  vocabSize: number;
  sharedClassifier: boolean;
  seqLen: number;
}

export async function readLlama2cHeader(path: string): Promise<Llama2cHeader> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(28);
    const { bytesRead } = await fh.read(buf, 0, 28, 0);
    if (bytesRead < 28) throw new Error(`${path}: too short for a llama2.c header`);
    const v = new DataView(buf.buffer);
    const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, (_, i) => v.getInt32(i * 4, true)) as [
      number, number, number, number, number, number, number,
    ];
    if ([dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].some((x) => x <= 0) || vocab === 0) {
      throw new Error(`${path}: not a llama2.c v0 checkpoint (header ${[dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen].join(', ')})`);
    }
    return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), sharedClassifier: vocab > 0, seqLen };
  } finally {
    await fh.close();
  }
}
