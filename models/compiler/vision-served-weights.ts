/**
 * The vision graph's served weights: the tensors it reads, by name, derived from a checkpoint's
 * VisionWeights. Every name starts with `vision.`, so one store of served weights (e.g. external data
 * shared by every graph of a model) can hold them beside the decoder's without a clash. q/k/v are
 * fused into one linear layer, as in the decoder.
 */
import type { VisionWeights } from '../checkpoint/vision-weights.js';
import type { InMemoryWeight } from '../onnx/weights.js';
import { concat as concatFloat32 } from './decoder-served-weights.js';

export const VISION_WEIGHT = {
  patchEmbedding: 'vision.patch_embedding',
  classEmbedding: 'vision.class_embedding',
  positionEmbedding: 'vision.position_embedding',
  preNorm: { weight: 'vision.pre_layrnorm.weight', bias: 'vision.pre_layrnorm.bias' },
  layerNorm1: (l: number) => ({ weight: `vision.layers.${l}.layer_norm1.weight`, bias: `vision.layers.${l}.layer_norm1.bias` }),
  qkvProj: (l: number) => `vision.layers.${l}.qkv_proj`,
  qkvBias: (l: number) => `vision.layers.${l}.qkv_bias`,
  outProj: (l: number) => `vision.layers.${l}.out_proj`,
  outBias: (l: number) => `vision.layers.${l}.out_bias`,
  layerNorm2: (l: number) => ({ weight: `vision.layers.${l}.layer_norm2.weight`, bias: `vision.layers.${l}.layer_norm2.bias` }),
  fc1: (l: number) => `vision.layers.${l}.fc1`,
  fc1Bias: (l: number) => `vision.layers.${l}.fc1_bias`,
  fc2: (l: number) => `vision.layers.${l}.fc2`,
  fc2Bias: (l: number) => `vision.layers.${l}.fc2_bias`,
  projector1: 'vision.projector.linear_1',
  projector1Bias: 'vision.projector.linear_1_bias',
  projector2: 'vision.projector.linear_2',
  projector2Bias: 'vision.projector.linear_2_bias',
} as const;

export function visionServedWeights(w: VisionWeights): Map<string, InMemoryWeight> {
  const c = w.config;
  const D = c.hiddenSize, I = c.intermediateSize;
  const m = new Map<string, InMemoryWeight>();
  const tensor = (name: string, dims: number[], data: Float32Array) => m.set(name, { kind: 'tensor', dims, data });
  const linear = (name: string, out: number, inDim: number, data: Float32Array) => m.set(name, { kind: 'linear', dims: [out, inDim], data });

  tensor(VISION_WEIGHT.patchEmbedding, [D, c.nChannels, c.patchSize, c.patchSize], w.patchEmbedding);
  tensor(VISION_WEIGHT.classEmbedding, [D], w.classEmbedding);
  tensor(VISION_WEIGHT.positionEmbedding, [w.positionEmbedding.length / D, D], w.positionEmbedding);
  tensor(VISION_WEIGHT.preNorm.weight, [D], w.preLayerNorm.weight);
  tensor(VISION_WEIGHT.preNorm.bias, [D], w.preLayerNorm.bias);
  w.layers.forEach((lw, l) => {
    tensor(VISION_WEIGHT.layerNorm1(l).weight, [D], lw.layerNorm1.weight);
    tensor(VISION_WEIGHT.layerNorm1(l).bias, [D], lw.layerNorm1.bias);
    // [out, in] row-major: stacking the rows of q, k, v is concatenating their arrays.
    linear(VISION_WEIGHT.qkvProj(l), 3 * D, D, concatFloat32([lw.q.weight, lw.k.weight, lw.v.weight]));
    tensor(VISION_WEIGHT.qkvBias(l), [3 * D], concatFloat32([lw.q.bias, lw.k.bias, lw.v.bias]));
    linear(VISION_WEIGHT.outProj(l), D, D, lw.out.weight);
    tensor(VISION_WEIGHT.outBias(l), [D], lw.out.bias);
    tensor(VISION_WEIGHT.layerNorm2(l).weight, [D], lw.layerNorm2.weight);
    tensor(VISION_WEIGHT.layerNorm2(l).bias, [D], lw.layerNorm2.bias);
    linear(VISION_WEIGHT.fc1(l), I, D, lw.fc1.weight);
    tensor(VISION_WEIGHT.fc1Bias(l), [I], lw.fc1.bias);
    linear(VISION_WEIGHT.fc2(l), D, I, lw.fc2.weight);
    tensor(VISION_WEIGHT.fc2Bias(l), [D], lw.fc2.bias);
  });
  const { linear1, linear2 } = w.projector;
  linear(VISION_WEIGHT.projector1, c.lmDim, D, linear1.weight);
  if (linear1.bias) tensor(VISION_WEIGHT.projector1Bias, [c.lmDim], linear1.bias);
  linear(VISION_WEIGHT.projector2, c.lmDim, c.lmDim, linear2.weight);
  if (linear2.bias) tensor(VISION_WEIGHT.projector2Bias, [c.lmDim], linear2.bias);
  return m;
}
