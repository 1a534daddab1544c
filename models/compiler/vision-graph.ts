/**
 * Compiles a LLaVA vision side (CLIP vision transformer + multimodal projector) into its own ONNX
 * graph, batched over images: `pixel_values [images, C, H, W]` → `image_features [images, tokens, lm_dim]`.
 *
 * As transformers computes it: a bias-free stride-`patch` convolution, CLS prepended, position
 * embeddings added, `pre_layrnorm`, then pre-LN blocks (LN1 → q/k/v with biases, q scaled by
 * head_dim^-0.5 → softmax → out proj → residual; LN2 → fc1 → activation → fc2 → residual). Only the
 * blocks up to the selected hidden state are computed (plus whatever a tap needs); the select
 * strategy drops CLS or keeps it; the projector is linear_1 → activation → linear_2.
 *
 * Weights come only through a WeightProvider, never from initializers built here, so the vision graph
 * gets whatever storage the provider gives the decoder (inline today, shared external data later).
 */
import { attr, GraphBuilder, type Dim, type Value, type ValueInfo } from '../onnx/graph-builder.js';
import { inlineWeights, type WeightProvider } from '../onnx/weights.js';
import { tokensPerImage, visionSeqLen, type VisionActivation, type VisionConfig, type VisionWeights } from '../checkpoint/vision-weights.js';
import { VISION_WEIGHT as W, visionServedWeights } from './vision-served-weights.js';
import {
  VISION_IMAGES_DIM,
  tapOutputName,
  visionHookName,
  type VisionHookKind,
  type VisionTapFragment,
  type VisionTapSpec,
} from './vision-hooks.js';

export const VISION_IO = {
  pixelValues: 'pixel_values',
  imageFeatures: 'image_features',
} as const;

/** A vision side whose weights come from a provider (inline arrays, or external data shared by graphs). */
export interface ServedVision {
  config: VisionConfig;
  weights: WeightProvider;
}

export interface VisionCompileOptions {
  taps?: readonly VisionTapFragment[];
  name?: string;
}

export interface CompiledVision {
  bytes: Uint8Array;
  config: VisionConfig;
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  taps: readonly VisionTapSpec[];
  /** Rows of `image_features` per image. */
  tokensPerImage: number;
  /** Width of each image token: the language model's hidden size. */
  lmDim: number;
  /** Blocks computed whole; one more is computed through its attention when a pattern tap needs it. */
  blocksComputed: number;
  nodeCount: number;
}

/** transformers' quick_gelu constant. */
const QUICK_GELU_ALPHA = 1.702;

export function compileVision(model: VisionWeights | ServedVision, options: VisionCompileOptions = {}): CompiledVision {
  const served: ServedVision = 'weights' in model ? model : { config: model.config, weights: inlineWeights(visionServedWeights(model)) };
  const c = served.config;
  const weights = served.weights;
  const taps = options.taps ?? [];
  const g = new GraphBuilder(options.name ?? 'attune_vision');
  const D = c.hiddenSize, H = c.nHeads, hd = c.headDim, S = visionSeqLen(c);
  const N = VISION_IMAGES_DIM;
  const i64 = (v: number | number[]) => g.constInt64(v);

  // ---- which blocks to compute ----------------------------------------------------------------------
  const tapLayers = (kind: VisionHookKind): number[] => {
    const out = new Set<number>();
    for (const f of taps) {
      if (f.hook !== kind) continue;
      for (let l = 0; l < c.nLayers; l++) if (f.layers ? f.layers(l, c) : l < c.featureLayer) out.add(l);
    }
    return [...out];
  };
  const residTaps = tapLayers('hook_resid_pre');
  const patternTaps = tapLayers('attn.hook_pattern');
  // Blocks 0..fullBlocks−1 run whole: the features need featureLayer of them, a tap at block l needs l.
  const fullBlocks = Math.max(c.featureLayer, ...residTaps, ...patternTaps);
  const lastBlock = patternTaps.includes(fullBlocks) ? fullBlocks : fullBlocks - 1;
  for (let l = 0; l <= lastBlock; l++) {
    if (!weights.has(W.qkvProj(l))) {
      const who = taps.filter((f) => (f.hook === 'attn.hook_pattern' ? patternTaps : residTaps).includes(l)).map((f) => f.owner);
      throw new Error(`vision block ${l} is needed${who.length ? ` (by taps of ${who.join(', ')})` : ''}, but the checkpoint does not store it`);
    }
  }

  const tapSpecs: VisionTapSpec[] = [];
  const applyTaps = (layer: number, kind: VisionHookKind, x: Value) => {
    const hook = visionHookName(layer, kind);
    for (const f of taps) {
      if (f.hook !== kind || !(f.layers ? f.layers(layer, c) : layer < c.featureLayer)) continue;
      f.tap(x, {
        g, config: c, layer, hook, owner: f.owner,
        tap(name: string, value: Value, dims: Dim[]) {
          const output = tapOutputName(f.owner, name);
          if (tapSpecs.some((t) => t.output === output)) throw new Error(`${hook}: ${f.owner} declares the tap ${name} twice; give each layer's tap its own name`);
          g.output(value, 'float32', [N, ...dims], output);
          tapSpecs.push({ owner: f.owner, name, output, dims: [...dims], layer, hook: kind });
        },
      });
    }
  };

  // ---- building blocks ------------------------------------------------------------------------------
  const layerNorm = (x: Value, names: { weight: string; bias: string }, outputName?: string): Value =>
    g.op('LayerNormalization', [x, weights.tensor(g, names.weight), weights.tensor(g, names.bias)], {
      axis: attr.int(-1), epsilon: attr.float(c.layerNormEps),
    }, outputName);
  const linear = (x: Value, name: string, bias?: string): Value => {
    const y = weights.linear(g, x, name);
    return bias ? g.op('Add', [y, weights.tensor(g, bias)]) : y;
  };
  const activation = (x: Value, kind: VisionActivation): Value => {
    if (kind === 'quick_gelu') return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.constFloat(QUICK_GELU_ALPHA)])])]);
    // The exact GELU: x · ½ · (1 + erf(x / √2)).
    const erf = g.op('Erf', [g.op('Mul', [x, g.constFloat(Math.SQRT1_2)])]);
    return g.op('Mul', [g.op('Mul', [x, g.constFloat(0.5)]), g.op('Add', [erf, g.constFloat(1)])]);
  };
  const toHeads = { perm: attr.ints([0, 2, 1, 3]) };
  // Constants are made on first use (and shared: the builder caches them), so a graph without blocks has none unused.
  const headShape = () => i64([0, 0, H, hd]);
  /** [N,S,D] → [N,H,S,hd] */
  const heads = (x: Value) => g.op('Transpose', [g.op('Reshape', [x, headShape()])], toHeads);

  // ---- embeddings -----------------------------------------------------------------------------------
  const pixels = g.input(VISION_IO.pixelValues, 'float32', [N, c.nChannels, c.imageSize, c.imageSize]);
  const patches = g.op('Conv', [pixels, weights.tensor(g, W.patchEmbedding)], {
    kernel_shape: attr.ints([c.patchSize, c.patchSize]),
    strides: attr.ints([c.patchSize, c.patchSize]),
  }); // [N,D,g,g]
  const patchRows = g.op('Transpose', [g.op('Reshape', [patches, i64([0, D, -1])])], { perm: attr.ints([0, 2, 1]) }); // [N,P,D]
  const images = g.op('Slice', [g.op('Shape', [pixels]), i64([0]), i64([1])]);
  const clsShape = g.op('Concat', [images, i64([1, D])], { axis: attr.int(0) });
  const cls = g.op('Expand', [g.op('Reshape', [weights.tensor(g, W.classEmbedding), i64([1, 1, D])]), clsShape]);
  const embedded = g.op('Add', [g.op('Concat', [cls, patchRows], { axis: attr.int(1) }), weights.tensor(g, W.positionEmbedding)]);
  let resid = layerNorm(embedded, W.preNorm, visionHookName(0, 'hook_resid_pre'));

  // ---- blocks ---------------------------------------------------------------------------------------
  let features: Value | undefined;
  for (let l = 0; l <= fullBlocks; l++) {
    if (l === c.featureLayer) features = resid;
    if (l < c.nLayers) applyTaps(l, 'hook_resid_pre', resid);
    if (l > lastBlock) break;

    const xn = layerNorm(resid, W.layerNorm1(l));
    const qkv = linear(xn, W.qkvProj(l), W.qkvBias(l));
    const [q, k, v] = g.opMulti('Split', [qkv, i64([D, D, D])], 3, { axis: attr.int(-1) }) as [Value, Value, Value];
    const kT = g.op('Transpose', [g.op('Reshape', [k, headShape()])], { perm: attr.ints([0, 2, 3, 1]) }); // [N,H,hd,S]
    const scores = g.op('MatMul', [heads(g.op('Mul', [q, g.constFloat(1 / Math.sqrt(hd))])), kT]); // [N,H,S,S]
    const probs = g.op('Softmax', [scores], { axis: attr.int(-1) }, visionHookName(l, 'attn.hook_pattern'));
    applyTaps(l, 'attn.hook_pattern', probs);
    if (l >= fullBlocks) break; // attention-only: a pattern tap's block past everything else computed

    const z = g.op('Transpose', [g.op('MatMul', [probs, heads(v)])], toHeads); // [N,S,H,hd]
    const attnOut = linear(g.op('Reshape', [z, i64([0, 0, D])]), W.outProj(l), W.outBias(l));
    const mid = g.op('Add', [resid, attnOut]);
    const hidden = activation(linear(layerNorm(mid, W.layerNorm2(l)), W.fc1(l), W.fc1Bias(l)), c.hiddenAct);
    const nextName = l + 1 < c.nLayers ? visionHookName(l + 1, 'hook_resid_pre') : 'vision.last_hidden_state';
    resid = g.op('Add', [mid, linear(hidden, W.fc2(l), W.fc2Bias(l))], {}, nextName);
  }
  if (!features) throw new Error(`internal: the feature layer ${c.featureLayer} was never reached`);

  // ---- feature selection and projector --------------------------------------------------------------
  const selected = c.selectStrategy === 'default' ? g.op('Slice', [features, i64([1]), i64([S]), i64([1])]) : features;
  const bias = (name: string) => (c.projectorBias ? name : undefined);
  const projected = linear(activation(linear(selected, W.projector1, bias(W.projector1Bias)), c.projectorAct), W.projector2, bias(W.projector2Bias));
  const perImage = tokensPerImage(c);
  g.output(projected, 'float32', [N, perImage, c.lmDim], VISION_IO.imageFeatures);

  return {
    bytes: g.toBytes(),
    config: c,
    inputs: [...g.inputs],
    outputs: [...g.outputs],
    taps: tapSpecs,
    tokensPerImage: perImage,
    lmDim: c.lmDim,
    blocksComputed: fullBlocks,
    nodeCount: g.nodeCount,
  };
}
