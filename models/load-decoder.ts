/** Loads a resolved model's weights, whatever their format. */
import { readFile } from 'node:fs/promises';
import type { DecoderWeights } from './checkpoint/decoder-weights.js';
import { parseLlama2cCheckpoint } from './checkpoint/llama2c.js';
import { loadHfDecoder } from './checkpoint/hf-decoder.js';
import type { ResolvedModel } from './resolve.js';

export async function loadDecoderWeights(model: ResolvedModel): Promise<DecoderWeights> {
  return model.format === 'llama2c' ? parseLlama2cCheckpoint(await readFile(model.checkpoint)) : loadHfDecoder(model.dir);
}
