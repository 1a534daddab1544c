/**
 * The layer and head counts of a model, read from its header or config.json alone: the profile an
 * engine is compiled with must be known before the engine starts, and loading the weights twice
 * just to learn two numbers would double the start-up cost for large models.
 */
import { readLlama2cHeader } from '../../models/checkpoint/llama2c-header.js';
import { readHfDecoderSpec } from '../../models/checkpoint/hf-decoder.js';
import type { ResolvedModel } from '../../models/resolve.js';

export interface ModelShape {
  nLayers: number;
  /** Query heads, after GQA expansion: the space ACT head ids live in. */
  nHeads: number;
}

export async function readModelShape(model: ResolvedModel): Promise<ModelShape> {
  if (model.format === 'llama2c') {
    const h = await readLlama2cHeader(model.checkpoint);
    return { nLayers: h.nLayers, nHeads: h.nHeads };
  }
  const { config } = await readHfDecoderSpec(model.dir);
  return { nLayers: config.nLayers, nHeads: config.nHeads };
}
