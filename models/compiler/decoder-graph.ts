/**
 * Compiles a Llama-family decoder (Llama, Mistral, Qwen2, llama2.c) into an explicit-attention ONNX
 * graph. Every attention step is a separate op, so every hook point is a tensor that fragments can
 * rewrite. One graph serves prefill and decode: the past KV capacity is a dynamic dimension (0 for
 * a fresh prefill), and the graph returns only the new K/V rows, which the engine writes into its
 * own fixed-capacity buffers (onnx-notes §5.2: returning whole `present` tensors costs 10x at 4k).
 *
 * Attention over `[past | new]` keys is computed as two MatMuls whose scores are concatenated, so the
 * cache is never copied inside the graph either.
 */
import { attr, GraphBuilder, type Value, type ValueInfo } from '../onnx/graph-builder.js';
import type { DecoderConfig, DecoderWeights } from '../checkpoint/decoder-weights.js';
import { DIM, HOOK_KINDS, KEYS_AXIS, hookName, type HookFragment, type HookKind, type RowInputSpec, type RowStateSpec, type TapSpec } from './hooks.js';
import type { GeometryInput } from './step-geometry.js';
import { FragmentHost } from './fragment-host.js';
import { inlineWeights, type WeightProvider } from '../onnx/weights.js';
import { DECODER_WEIGHT as W, decoderServedWeights } from './decoder-served-weights.js';
import { ropeInverseFrequencies } from './rope.js';

export interface CompileOptions {
  /**
   * Splice image features into the token embeddings (an LVLM's language model): the graph takes
   * `image_features [M, dim]` and `image_slots [M, 2]` (batch row, new-token index) and overwrites
   * those embeddings before layer 0. M may be 0 (text-only steps), which leaves every row untouched.
   */
  imageSplice?: boolean;
  fragments?: readonly HookFragment[];
  name?: string;
}

/** Everything the engine needs to feed and interpret a compiled graph (JSON-serialisable). */
export interface DecoderGraphInfo {
  config: DecoderConfig;
  imageSplice: boolean;
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  /** KV cache and calibrator states, in declaration order. */
  states: readonly RowStateSpec[];
  /** Calibrator control inputs. */
  rowInputs: readonly RowInputSpec[];
  /** Which step-geometry inputs the graph has. */
  geometry: readonly GeometryInput[];
  /** Read-only outputs that fragments declared for their owners. */
  taps: readonly TapSpec[];
  /** Owners (calibrator ids) whose fragments are compiled in, in registry order. */
  owners: readonly string[];
  nodeCount: number;
}

export interface CompiledDecoder extends DecoderGraphInfo {
  bytes: Uint8Array;
}

/** Names of the fixed decoder inputs and outputs. */
export const DECODER_IO = {
  inputIds: 'input_ids',
  /** [M, dim] f32: image features to splice in, one row per image-token position of this step. */
  imageFeatures: 'image_features',
  /** [M, 2] int64: (batch row, new-token index) of each spliced row. */
  imageSlots: 'image_slots',
  positionIds: 'position_ids',
  /** [batch, 1, 1, past_capacity]: 0 for filled cache slots, -inf for empty ones. */
  pastBias: 'past_bias',
  /** [batch, 1, new_tokens, new_tokens]: causal mask among the new tokens. */
  causalBias: 'causal_bias',
  /** [batch, logit_rows] int64: which new-token positions to compute logits for. */
  logitPositions: 'logit_positions',
  logits: 'logits',
  pastKey: (l: number) => `past_key_values.${l}.key`,
  pastValue: (l: number) => `past_key_values.${l}.value`,
} as const;

/** A decoder whose weights come from a provider (inline arrays, or external data shared by graphs). */
export interface ServedDecoder {
  config: DecoderConfig;
  weights: WeightProvider;
}

export function compileDecoder(model: DecoderWeights | ServedDecoder, options: CompileOptions = {}): CompiledDecoder {
  const served: ServedDecoder = 'weights' in model ? model : { config: model.config, weights: inlineWeights(decoderServedWeights(model)) };
  const c = served.config;
  const weights = served.weights;
  const imageSplice = options.imageSplice ?? false;
  const fragments = options.fragments ?? [];
  const g = new GraphBuilder(options.name ?? 'attune_decoder');
  const H = c.nHeads, KV = c.nKvHeads, hd = c.headDim, rep = H / KV;

  const host = new FragmentHost(g, c);

  // ---- inputs ---------------------------------------------------------------------------------
  const B = DIM.batch, T = DIM.queries, C = DIM.past;
  const tokens = g.input(DECODER_IO.inputIds, 'int64', [B, T]);
  const positionIds = g.input(DECODER_IO.positionIds, 'int64', [B, T]);
  const pastBias = g.input(DECODER_IO.pastBias, 'float32', [B, 1, 1, C]);
  const causalBias = g.input(DECODER_IO.causalBias, 'float32', [B, 1, T, T]);
  const logitPositions = g.input(DECODER_IO.logitPositions, 'int64', [B, DIM.logitRows]);

  // ---- shapes shared by every layer -------------------------------------------------------------
  const i64 = (v: number | number[]) => g.constInt64(v);
  const shapeOf = (v: Value) => g.op('Shape', [v]);
  const dimOf = (v: Value, axis: number) => g.op('Slice', [shapeOf(v), i64([axis]), i64([axis + 1])]);
  const newLen = dimOf(positionIds, 1); // [1]
  const pastLen = dimOf(pastBias, 3); // [1]
  const splitPastNew = g.op('Concat', [pastLen, newLen], { axis: attr.int(0) });
  const repNewLen = g.op('Mul', [newLen, i64([rep])]);
  // allowzero=0 semantics: a literal 0 copies the input's dim at that index.
  const toHeads = (keysAxis: Value) => g.op('Concat', [i64([0, H]), newLen, keysAxis], { axis: attr.int(0) });
  const toKvGroups = (keysAxis: Value) => g.op('Concat', [i64([0, KV]), repNewLen, keysAxis], { axis: attr.int(0) });
  const copyDim = i64([0]);
  const shapeHeadsByKeys = toHeads(copyDim); // [B,H,T,<same>]
  const shapeGroupsByKeys = toKvGroups(copyDim); // [B,KV,rep*T,<same>]

  // RoPE through ORT's RotaryEmbedding kernel (one node instead of ~10 per tensor). The tables are
  // computed the way llama2.c does it: the angle pos·freq is rounded to f32 before cos/sin; the
  // frequencies carry the checkpoint's scaling (rope.ts).
  const invFreq = ropeInverseFrequencies(c);
  const cosTable = new Float32Array(c.maxSeqLen * (hd / 2));
  const sinTable = new Float32Array(c.maxSeqLen * (hd / 2));
  for (let pos = 0; pos < c.maxSeqLen; pos++) {
    for (let p = 0; p < hd / 2; p++) {
      const angle = Math.fround(pos * invFreq[p]!);
      cosTable[pos * (hd / 2) + p] = Math.cos(angle);
      sinTable[pos * (hd / 2) + p] = Math.sin(angle);
    }
  }
  const cosCache = g.initializer('rope.cos', 'float32', [c.maxSeqLen, hd / 2], cosTable);
  const sinCache = g.initializer('rope.sin', 'float32', [c.maxSeqLen, hd / 2], sinTable);
  /** x: [B,T,nh*hd] → the same, rotated. */
  const rope = (x: Value, nh: number): Value =>
    g.op('RotaryEmbedding', [x, positionIds, cosCache, sinCache], {
      // Served q/k rows are always interleaved (decoder-served-weights.ts).
      interleaved: attr.int(1),
      num_heads: attr.int(nh),
    }, undefined, 'com.microsoft');

  // ORT's SimplifiedLayerNormalization is RMSNorm in one kernel (it lives in the ONNX domain in ORT).
  const rmsNorm = (x: Value, name: string): Value =>
    g.op('SimplifiedLayerNormalization', [x, weights.tensor(g, name)], {
      axis: attr.int(-1), epsilon: attr.float(c.rmsNormEps),
    });

  const hook = (layer: number, kind: HookKind, x: Value): Value => host.apply(fragments, layer, kind, x);

  // ---- the decoder --------------------------------------------------------------------------------
  const embedded = g.op('Gather', [weights.tensor(g, W.embedTokens), tokens], {}, imageSplice ? undefined : hookName(0, 'hook_resid_pre'));
  let resid = imageSplice
    ? g.op('ScatterND', [
        embedded,
        g.input(DECODER_IO.imageSlots, 'int64', ['image_rows', 2]),
        g.input(DECODER_IO.imageFeatures, 'float32', ['image_rows', c.dim]),
      ], {}, hookName(0, 'hook_resid_pre'))
    : embedded;

  const scale = g.constFloat(1 / Math.sqrt(hd));
  for (let l = 0; l < c.nLayers; l++) {
    resid = hook(l, 'hook_resid_pre', resid);
    const xn = rmsNorm(resid, W.attnNorm(l));

    // Fused q/k/v projection: one MatMul instead of three (tiny models are op-overhead bound).
    let qkv = weights.linear(g, xn, W.qkvProj(l));
    if (weights.has(W.qkvBias(l))) qkv = g.op('Add', [qkv, weights.tensor(g, W.qkvBias(l))]);
    const [q0, k0, v0] = g.opMulti('Split', [qkv, i64([H * hd, KV * hd, KV * hd])], 3, { axis: attr.int(-1) }) as [Value, Value, Value];
    const q = g.op('Reshape', [rope(g.op('Mul', [q0, scale]), H), i64([0, 0, H, hd])]);
    const k = g.op('Reshape', [rope(k0, KV), i64([0, 0, KV, hd])]);
    const v = g.op('Reshape', [v0, i64([0, 0, KV, hd])]);

    const perm = { perm: attr.ints([0, 2, 1, 3]) };
    const kNew = g.op('Transpose', [k], perm); // [B,KV,T,hd]
    const vNew = g.op('Transpose', [v], perm);
    const pastK = host.declareState('decoder', DECODER_IO.pastKey(l), [KV, KEYS_AXIS, hd], 'append');
    const pastV = host.declareState('decoder', DECODER_IO.pastValue(l), [KV, KEYS_AXIS, hd], 'append');
    pastK.setNext(kNew);
    pastV.setNext(vNew);

    // Query heads grouped by their KV head: [B,KV,rep*T,hd], so GQA never materialises repeated K/V.
    const qGroups = g.op('Reshape', [g.op('Transpose', [q], perm), shapeGroupsByKeys]);
    const kT = { perm: attr.ints([0, 1, 3, 2]) };
    const scoresPast = g.op('Reshape', [g.op('MatMul', [qGroups, g.op('Transpose', [pastK.value], kT)]), shapeHeadsByKeys]);
    const scoresNew = g.op('Reshape', [g.op('MatMul', [qGroups, g.op('Transpose', [kNew], kT)]), shapeHeadsByKeys]);
    let scores = g.op('Concat', [g.op('Add', [scoresPast, pastBias]), g.op('Add', [scoresNew, causalBias])], { axis: attr.int(3) }, hookName(l, 'attn.hook_attn_scores'));
    scores = hook(l, 'attn.hook_attn_scores', scores);
    let probs = g.op('Softmax', [scores], { axis: attr.int(-1) }, hookName(l, 'attn.hook_pattern'));
    probs = hook(l, 'attn.hook_pattern', probs);

    const [pPast, pNew] = g.opMulti('Split', [probs, splitPastNew], 2, { axis: attr.int(3) }) as [Value, Value];
    const zGroups = g.op('Add', [
      g.op('MatMul', [g.op('Reshape', [pPast, shapeGroupsByKeys]), pastV.value]),
      g.op('MatMul', [g.op('Reshape', [pNew, shapeGroupsByKeys]), vNew]),
    ]);
    let z = g.op('Reshape', [zGroups, shapeHeadsByKeys], {}, hookName(l, 'attn.hook_z')); // [B,H,T,hd]
    z = hook(l, 'attn.hook_z', z);
    const merged = g.op('Reshape', [g.op('Transpose', [z], perm), i64([0, 0, H * hd])]);
    const attnOut = weights.linear(g, merged, W.oProj(l));
    const mid = g.op('Add', [resid, attnOut]);

    const xn2 = rmsNorm(mid, W.ffnNorm(l));
    const gu = weights.linear(g, xn2, W.gateUpProj(l));
    const [gate, up] = g.opMulti('Split', [gu, i64([c.hiddenDim, c.hiddenDim])], 2, { axis: attr.int(-1) }) as [Value, Value];
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    const ffnOut = weights.linear(g, act, W.downProj(l));
    const nextName = l + 1 < c.nLayers ? hookName(l + 1, 'hook_resid_pre') : undefined;
    resid = g.op('Add', [mid, ffnOut], {}, nextName);
  }

  // Only the requested positions reach the LM head: prefill usually needs just the last one.
  const gatherIdx = g.op('Expand', [
    g.op('Unsqueeze', [logitPositions, i64([-1])]),
    g.op('Concat', [shapeOf(logitPositions), i64([c.dim])], { axis: attr.int(0) }),
  ]);
  const picked = g.op('GatherElements', [resid, gatherIdx], { axis: attr.int(1) });
  const normed = rmsNorm(picked, W.finalNorm);
  const flat = g.op('Reshape', [normed, i64([-1, c.dim])]);
  const logitsFlat = weights.linear(g, flat, W.lmHead);
  const logits = g.op('Reshape', [logitsFlat, g.op('Concat', [shapeOf(logitPositions), i64([c.vocabSize])], { axis: attr.int(0) })]);
  g.output(logits, 'float32', [B, DIM.logitRows, c.vocabSize], DECODER_IO.logits);

  host.emitStateOutputs();

  return {
    bytes: g.toBytes(),
    config: c,
    imageSplice,
    inputs: [...g.inputs],
    outputs: [...g.outputs],
    states: host.states,
    rowInputs: host.rowInputs,
    geometry: host.geometry,
    taps: host.taps,
    owners: [...new Set(fragments.map((f) => f.owner))],
    nodeCount: g.nodeCount,
  };
}

export { HOOK_KINDS };
