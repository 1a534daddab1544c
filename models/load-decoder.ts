/** Opens or loads a resolved model's weights, whatever their format. */
import { readDecoderWeights, type DecoderCheckpoint } from './checkpoint/decoder-checkpoint.js';
import type { DecoderWeights } from './checkpoint/decoder-weights.js';
import { openLlama2cCheckpoint } from './checkpoint/llama2c.js';
import { openHfCheckpoint } from './checkpoint/hf-decoder.js';
import type { ResolvedModel } from './resolve.js';

/** The checkpoint, read tensor by tensor (any size). Close it when done. */
export function openDecoderCheckpoint(model: ResolvedModel): Promise<DecoderCheckpoint> {
  return model.format === 'llama2c' ? openLlama2cCheckpoint(model.checkpoint) : openHfCheckpoint(model.dir);
}

/** Every tensor in memory at once: for small models, the reference forward and tests. */
export async function loadDecoderWeights(model: ResolvedModel): Promise<DecoderWeights> {
  const ckpt = await openDecoderCheckpoint(model);
  try {
    return await readDecoderWeights(ckpt);
  } finally {
    await ckpt.close();
  }
}
