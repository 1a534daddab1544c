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

/**
 * The layers ACT is compiled into when the profile does not say: 2..L−1, as in the official code.
 * The same default as `actLayers` in calibrators/act.ts, which needs a full DecoderConfig.
 */
export function defaultActLayers(nLayers: number): number[] {
  return Array.from({ length: Math.max(0, nLayers - 2) }, (_, i) => i + 2);
}
