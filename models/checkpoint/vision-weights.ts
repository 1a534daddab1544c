/**
 * The architecture-neutral description of a LLaVA vision side (a CLIP vision transformer, the feature
 * layer it is read at, and the multimodal projector) that the checkpoint loader produces and every
 * consumer (vision graph compiler, float64 reference, benchmarks) reads.
 *
 * Matrices are row-major `[out, in]` as nn.Linear stores them; the patch embedding is nn.Conv2d's
 * `[hidden, channels, patch, patch]`.
 */

/** `quick_gelu` is x·σ(1.702x) (OpenAI CLIP); `gelu` is the exact erf GELU (transformers' "gelu"). */
export const VISION_ACTIVATIONS = ['quick_gelu', 'gelu'] as const;
export type VisionActivation = (typeof VISION_ACTIVATIONS)[number];

/** `default` drops the CLS row of the selected hidden state (LLaVA-1.5); `full` keeps it. */
export type FeatureSelectStrategy = 'default' | 'full';

export interface VisionConfig {
  /** Residual width of the tower. */
  hiddenSize: number;
  /** MLP inner width. */
  intermediateSize: number;
  nHeads: number;
  headDim: number;
  /** Blocks the checkpoint's tower declares (num_hidden_layers), computed or not. */
  nLayers: number;
  imageSize: number;
  patchSize: number;
  nChannels: number;
  layerNormEps: number;
  hiddenAct: VisionActivation;
  /**
   * The hidden state the image features are read from, as an index into transformers'
   * `hidden_states`: 0 is the pre_layrnorm output, k ≥ 1 the output of block k − 1. Always
   * normalised to 0..nLayers (the config's −2 becomes nLayers − 1).
   */
  featureLayer: number;
  selectStrategy: FeatureSelectStrategy;
  projectorAct: VisionActivation;
  projectorBias: boolean;
  /** The language model's hidden size: the width of every image token the projector writes. */
  lmDim: number;
}

/** Patches per image side: CLIP's stride-`patch` convolution floors like `image_size // patch_size`. */
export const patchesPerSide = (c: VisionConfig): number => Math.floor(c.imageSize / c.patchSize);
/** The tower's sequence: every patch plus CLS (position 0). */
export const visionSeqLen = (c: VisionConfig): number => patchesPerSide(c) ** 2 + 1;
/** Image tokens each image becomes in the prompt. */
export const tokensPerImage = (c: VisionConfig): number => visionSeqLen(c) - (c.selectStrategy === 'default' ? 1 : 0);
/**
 * The block whose output the features are (its hook_resid_pre's successor): featureLayer − 1, or −1
 * when the features are the pre_layrnorm output. PAINT's "layer −2" attention is this block's.
 */
export const featureBlock = (c: VisionConfig): number => c.featureLayer - 1;

export interface LinearWeights {
  /** [out, in] */
  weight: Float32Array;
  /** [out]; absent for a bias-free projector. */
  bias?: Float32Array;
}

export interface LayerNormWeights {
  weight: Float32Array;
  bias: Float32Array;
}

export interface VisionLayerWeights {
  layerNorm1: LayerNormWeights;
  q: Required<LinearWeights>;
  k: Required<LinearWeights>;
  v: Required<LinearWeights>;
  out: Required<LinearWeights>;
  layerNorm2: LayerNormWeights;
  fc1: Required<LinearWeights>;
  fc2: Required<LinearWeights>;
}

export interface VisionWeights {
  config: VisionConfig;
  /** [hidden, channels, patch, patch]; CLIP's patch convolution has no bias. */
  patchEmbedding: Float32Array;
  /** [hidden] */
  classEmbedding: Float32Array;
  /** [seq, hidden]: row 0 is CLS's. */
  positionEmbedding: Float32Array;
  preLayerNorm: LayerNormWeights;
  /**
   * Blocks 0..n−1 as loaded: at least the featureLayer blocks the features need; blocks after them
   * are kept when the checkpoint has them (a tap may read one), never required.
   */
  layers: VisionLayerWeights[];
  projector: { linear1: LinearWeights; linear2: LinearWeights };
}

/** Throws when an array's length disagrees with the config, naming it: loaders call it once. */
export function checkVisionWeights(w: VisionWeights): void {
  const c = w.config;
  const D = c.hiddenSize, I = c.intermediateSize, S = visionSeqLen(c);
  const expect = (name: string, a: Float32Array | undefined, n: number) => {
    if (a && a.length !== n) throw new Error(`${name}: expected ${n} floats, found ${a.length}`);
  };
  if (c.nHeads * c.headDim !== D) throw new Error(`vision hidden size ${D} is not heads ${c.nHeads} × head dim ${c.headDim}`);
  if (c.featureLayer < 0 || c.featureLayer > c.nLayers) throw new Error(`feature layer ${c.featureLayer} is outside 0..${c.nLayers}`);
  if (w.layers.length < c.featureLayer) throw new Error(`the features need ${c.featureLayer} blocks, ${w.layers.length} are loaded`);
  expect('patchEmbedding', w.patchEmbedding, D * c.nChannels * c.patchSize * c.patchSize);
  expect('classEmbedding', w.classEmbedding, D);
  expect('positionEmbedding', w.positionEmbedding, S * D);
  expect('preLayerNorm.weight', w.preLayerNorm.weight, D);
  expect('preLayerNorm.bias', w.preLayerNorm.bias, D);
  w.layers.forEach((l, i) => {
    const p = `layers.${i}.`;
    for (const [name, ln] of [['layerNorm1', l.layerNorm1], ['layerNorm2', l.layerNorm2]] as const) {
      expect(`${p}${name}.weight`, ln.weight, D);
      expect(`${p}${name}.bias`, ln.bias, D);
    }
    for (const name of ['q', 'k', 'v', 'out'] as const) {
      expect(`${p}${name}.weight`, l[name].weight, D * D);
      expect(`${p}${name}.bias`, l[name].bias, D);
    }
    expect(`${p}fc1.weight`, l.fc1.weight, I * D);
    expect(`${p}fc1.bias`, l.fc1.bias, I);
    expect(`${p}fc2.weight`, l.fc2.weight, D * I);
    expect(`${p}fc2.bias`, l.fc2.bias, D);
  });
  const { linear1, linear2 } = w.projector;
  expect('projector.linear1.weight', linear1.weight, c.lmDim * D);
  expect('projector.linear2.weight', linear2.weight, c.lmDim * c.lmDim);
  for (const [name, lin] of [['linear1', linear1], ['linear2', linear2]] as const) {
    if (c.projectorBias !== (lin.bias !== undefined)) throw new Error(`projector.${name}: bias ${lin.bias ? 'present' : 'absent'}, but projectorBias is ${c.projectorBias}`);
    expect(`projector.${name}.bias`, lin.bias, c.lmDim);
  }
}
