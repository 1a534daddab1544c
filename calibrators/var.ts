/**
 * VAR, visual attention redistribution (Kang et al., "See What You Are Told: Visual Attention Sink in
 * Large Multimodal Models", ICLR 2025), faithful to the official code (seilk/VisAttnSink @ 98e62d6)
 * as specified in shared/specs/var.md §9.
 *
 * Per calibrated layer l and row:
 * - at `blocks.{l}.hook_resid_pre` (the layer's input, before its norm): φ = max over the sink dims
 *   of |x / RMS(x)| in fp32 (no norm gain, eps 1e-6); prompt tokens with φ > τ are the layer's sinks.
 *   They are detected at prefill (chunk by chunk: an `append` state, like the KV cache) and frozen:
 *   decode steps feed τ = +∞, so generated tokens are never sinks;
 * - at `blocks.{l}.attn.hook_pattern`, per head and query row, on the unmodified attention
 *   (`ctx.original`): the image-centric selection (attention to the image ≥ min_image_attention and
 *   visual sink share ≤ 1 − min_nonsink_ratio, the official `portion` with its per-key 1e-6), then
 *   every sink column (text and visual) × (1 − p) and the freed mass onto the visual non-sinks in
 *   proportion to their attention. A layer without visual sinks is skipped (official logic.py:140).
 * Edited rows: text rows after the last image at prefill, the new row at decode. Visual keys are the
 * union of the row's image spans (a labelled generalisation: the official code takes one image).
 *
 * Gates that need no graph op: τ is fed per row, one for layers 2..L−2 and one for L−1 (+∞ when the
 * row leaves L−1 alone, and both +∞ on decode steps), and `min_image` per query row (+∞ on rows that
 * are not edited, and on every row of a request without VAR). Unselected rows, and rows with VAR off, pass the pattern through a `Where`,
 * so they are bit-identical to the plain graph.
 */
import { z } from 'zod';
import { attr, type Value } from '../models/onnx/graph-builder.js';
import { DIM, KEYS_AXIS, tapOutputName, type FragmentContext, type HookFragment } from '../models/compiler/hooks.js';
import type { ModelProfile } from '../models/profiles/profile.js';
import {
  CalibrationConfigError, type Calibrator, type CalibrationDetail, type ImageSpan, type ModelFacts, type RowInputWriter, type RowStep, type Taps,
} from './calibrator.js';
import { SMALLEST_NORMAL_F32 } from './act.js';

export const VAR_DEFAULTS = { recycle_fraction: 0.4, min_nonsink_ratio: 0.5, min_image_attention: 0.2 } as const;

/** The official code's eps: inside the RMS of φ, and added per visual key to the sink-ratio denominator. */
export const VAR_EPS = 1e-6;

const unit = () => z.number().min(0).max(1);

export const VarConfigSchema = z
  .object({
    recycle_fraction: unit().optional().describe('Paper p: the fraction of sink attention moved onto visual non-sink tokens; 0 changes nothing. Default 0.4 (the official code\'s p: 0.6 keeps 60 %).'),
    min_nonsink_ratio: unit().optional().describe('Paper ρ: a (head, query row) is edited when at least this share of its image attention is on non-sink visual tokens. Default 0.5; the paper uses 0.8 for general VQA and 0.9 for vision-centric tasks.'),
    min_image_attention: unit().optional().describe('A (head, query row) is edited only if its attention to the image is at least this. Default 0.2.'),
    tau: z.number().gt(0).finite().optional().describe('A prompt token is a sink in a layer when φ (its largest |x/RMS(x)| over the sink dims) exceeds this. Default: the model profile.'),
    sink_dims: z.array(z.number().int().min(0)).optional().describe('The model\'s massive-activation hidden dimensions (0-based). Default: the model profile. Empty changes nothing.'),
    include_last_layer: z.boolean().optional().describe('Also edit the last layer (layers 2..L−1, as the official release does); default false (2..L−2, as the paper).'),
  })
  .strict();

/** VAR's section of a model profile: what `attune profile var` finds for a checkpoint. */
export const VarProfileSchema = z
  .object({
    sink_dims: z.array(z.number().int().min(0)).min(1),
    tau: z.number().gt(0).finite(),
    /** How they were found, for humans. */
    source: z.string().optional(),
  })
  .strict();
export type VarProfile = z.infer<typeof VarProfileSchema>;

export function varProfile(profile: ModelProfile): VarProfile | undefined {
  return profile.var as VarProfile | undefined;
}

export interface VarConfig {
  recycleFraction: number;
  minNonsinkRatio: number;
  minImageAttention: number;
  tau: number;
  /** Sorted, distinct. */
  sinkDims: number[];
  includeLastLayer: boolean;
  /** The layers this request edits. */
  layers: number[];
  nLayers: number;
  dim: number;
}

export interface VarMemo {
  /** Layer → (head, query row) pairs edited at prefill, summed over chunks. */
  editedPrefill: Map<number, number>;
  /** (head, row) pairs edited at decode steps, over every layer. */
  editedDecode: number;
  /** Layer → sink positions, read from the state once the prompt is in. */
  sinks: Map<number, number[]> | null;
  /** The row's visual positions (the union of its image spans). */
  visual: ReadonlySet<number>;
}

/** Layers that get fragments: 2..L−1 (layers 0 and 1 are never edited); the last is gated per row. */
export function varCompiledLayers(nLayers: number): number[] {
  return Array.from({ length: Math.max(0, nLayers - 2) }, (_, i) => i + 2);
}

/** The layers a request edits: 2..L−2 (the paper), or 2..L−1 with include_last_layer (the official release). */
export function varLayers(nLayers: number, includeLastLayer: boolean): number[] {
  return varCompiledLayers(nLayers).filter((l) => includeLastLayer || l < nLayers - 1);
}

/** The first position after the row's last image: prompt rows from here on are edited. */
export function queryStart(images: readonly ImageSpan[]): number {
  return images.reduce((end, s) => Math.max(end, s.start + s.length), 0);
}

const names = {
  tau: 'var.tau',
  tauLast: 'var.tau_last',
  sinkDims: 'var.sink_dims',
  minImage: 'var.min_image',
  maxSinkRatio: 'var.max_sink_ratio',
  recycle: 'var.recycle',
  ratioSlack: 'var.ratio_slack',
  sinks: (l: number) => `var.sink.${l}`,
  edited: (l: number) => `edited.${l}`,
};
/** ctx.local key: the layer's newly detected sink flags, from hook_resid_pre to hook_pattern. */
const FRESH = 'fresh_sinks';
const FLOAT = 1;

/** At the layer input: this step's new tokens that are sinks, `[B,1,1,T]` 0/1 (the state's update). */
function detectSinks(x: Value, ctx: FragmentContext): Value {
  const { g, layer } = ctx;
  const D = ctx.config.dim;
  const i64 = (v: number[]) => g.constInt64(v);
  const ones = ctx.shared('ones', () => g.initializer(g.fresh('var_ones'), 'float32', [D], new Float32Array(D).fill(1)));
  const dims = ctx.rowInput(names.sinkDims, 'float32', [1, D], 0); // [B,1,D] 0/1
  // x / sqrt(mean(x²) + 1e-6) in fp32, no gain: RMSNorm with a unit scale.
  const z = g.op('SimplifiedLayerNormalization', [x, ones], { axis: attr.int(-1), epsilon: attr.float(VAR_EPS) });
  const phi = g.op('ReduceMax', [g.op('Mul', [g.op('Abs', [z]), dims])], { axes: attr.ints([-1]), keepdims: attr.int(0) }); // [B,T]
  // One τ for layers 2..L−2, another for L−1 (which include_last_layer turns on); +∞ = no sinks.
  const tau = ctx.rowInput(layer === ctx.config.nLayers - 1 ? names.tauLast : names.tau, 'float32', [1, 1, 1], Infinity); // [B,1,1,1]
  const over = g.op('Greater', [g.op('Unsqueeze', [phi, i64([1, 2])]), tau]); // [B,1,1,T]
  // Named as the state's update output, so the graph needs no Identity to emit it.
  return g.op('Cast', [over], { to: attr.int(FLOAT) }, `${names.sinks(layer)}.update`);
}

function redistribute(x: Value, ctx: FragmentContext): Value {
  const { g, layer } = ctx;
  const H = ctx.config.nHeads;
  const fresh = ctx.local.get(FRESH);
  if (!fresh) throw new Error(`VAR: layer ${layer}'s pattern fragment ran without its hook_resid_pre fragment`);
  const perRow = (name: string, identity: number) => ctx.rowInput(name, 'float32', [1, 1, 1], identity); // [B,1,1,1]
  const recycle = perRow(names.recycle, 0);
  // Per step: the visual keys v, and v·(1 − ρ) for the ratio test.
  const v = ctx.shared('visual', () => g.op('Cast', [g.op('Unsqueeze', [ctx.geometry('keyIsImage'), g.constInt64([1, 2])])], { to: attr.int(FLOAT) }));
  const vMaxRatio = ctx.shared('visual_max_ratio', () => g.op('Mul', [v, perRow(names.maxSinkRatio, 0)]));

  // Key masks, [B,1,1,K] 0/1: every sink s (the frozen past's and this step's), visual sinks vs,
  // visual non-sinks ns; sr = p on sinks; w = vs − (1 − ρ)·v.
  const state = ctx.rowState(names.sinks(layer), [1, 1, KEYS_AXIS], 'append');
  state.setNext(fresh);
  const s = g.op('Concat', [state.value, fresh], { axis: attr.int(3) });
  const vs = g.op('Mul', [s, v]);
  const ns = g.op('Sub', [v, vs]);
  const w = g.op('Sub', [vs, vMaxRatio]);
  const sr = g.op('Mul', [s, recycle]);
  const anyVisualSink = g.op('ReduceMax', [vs], { axes: attr.ints([3]), keepdims: attr.int(1) }); // [B,1,1,1]

  // Four sums over the keys of every (head, query row) of the unmodified attention, one MatMul
  // ([B,H,T,4]): attention to the image, Σ_vs − (1 − ρ)·Σ_v, the budget p·Σ_S, and Σ_NS.
  const columns = g.op('Transpose', [g.op('Concat', [v, w, sr, ns], { axis: attr.int(2) })], { perm: attr.ints([0, 1, 3, 2]) });
  const [image, overRatio, budget, nonSink] = g.opMulti('Split', [g.op('MatMul', [ctx.original, columns])], 4, { axis: attr.int(3) }) as [Value, Value, Value, Value];

  // Selection: the official portion Σ_vs / Σ_v(a + 1e-6) ≤ 1 − ρ, multiplied out (the slack is
  // (1 − ρ)·N_v·1e-6); image attention ≥ the pre-filter (+∞ on rows that are not edited); and visual
  // non-sink mass to scale, which a layer without visual sinks lacks (× 0).
  const selected = g.op('And', [
    g.op('And', [
      g.op('LessOrEqual', [overRatio, perRow(names.ratioSlack, 0)]),
      g.op('GreaterOrEqual', [image, ctx.rowInput(names.minImage, 'float32', [1, DIM.queries, 1], Infinity)]),
    ]),
    g.op('Greater', [g.op('Mul', [nonSink, anyVisualSink]), g.constFloat(SMALLEST_NORMAL_F32)]),
  ]); // [B,H,T,1]
  ctx.tap(names.edited(layer), g.op('Cast', [selected], { to: attr.int(FLOAT) }, tapOutputName('var', names.edited(layer))), [H, DIM.queries, 1]);

  // gain = 1 − p on sinks, 1 + p·Σ_S/Σ_NS on visual non-sinks, exactly 1 elsewhere (both terms exact 0).
  const gain = g.op('Add', [g.op('Sub', [g.constFloat(1), sr]), g.op('Mul', [ns, g.op('Div', [budget, nonSink])])]);
  return g.op('Where', [selected, g.op('Mul', [x, gain]), x]);
}

/** The row's 0/1 mask over the model width, built once per request config rather than every step. */
const dimMasks = new WeakMap<VarConfig, Float32Array>();
function sinkDimMask(cfg: VarConfig): Float32Array {
  let mask = dimMasks.get(cfg);
  if (!mask) {
    mask = new Float32Array(cfg.dim);
    for (const d of cfg.sinkDims) mask[d] = 1;
    dimMasks.set(cfg, mask);
  }
  return mask;
}

function visualPositions(images: readonly ImageSpan[]): Set<number> {
  return new Set(images.flatMap((s) => Array.from({ length: s.length }, (_, i) => s.start + i)));
}

function checkProfile(model: ModelFacts): void {
  const p = varProfile(model.profile);
  const bad = p?.sink_dims.find((d) => d >= model.config.dim);
  if (bad !== undefined) throw new Error(`the VAR profile of ${model.name} names sink dim ${bad}, but the model's hidden size is ${model.config.dim}`);
}

export const varCalibrator: Calibrator<VarConfig, VarMemo> = {
  id: 'var',
  summary: 'Visual attention redistribution (VAR, ICLR 2025): finds visual sink tokens from massive activations and moves part of the sink attention of image-centric heads onto the other image tokens.',
  schema: VarConfigSchema,
  profileSchema: VarProfileSchema,
  // ACT and VAR both redistribute post-softmax mass at hook_pattern; neither paper defines their composition.
  conflicts: ['act'],

  resolve(value, model) {
    const parsed = value === true ? {} : VarConfigSchema.parse(value);
    if (!model.vision) throw new CalibrationConfigError([], `model ${model.name} has no vision tower; VAR works on image tokens`);
    const profile = varProfile(model.profile);
    const tau = parsed.tau ?? profile?.tau;
    const dims = parsed.sink_dims ?? profile?.sink_dims;
    if (tau === undefined || dims === undefined) {
      throw new CalibrationConfigError([dims === undefined ? 'sink_dims' : 'tau'],
        `model ${model.name} has no VAR profile (sink_dims and tau). Find them with \`attune profile var --model ${model.name} --images DIR --out attune-profile.json\` ` +
        `and place the file next to the weights (or at models/profiles/${model.name}.json), or pass both, e.g. {"sink_dims": [1415, 2533], "tau": 20}`);
    }
    dims.forEach((d, i) => {
      if (d >= model.config.dim) throw new CalibrationConfigError(['sink_dims', i], `dim ${d} does not exist; the model's hidden size is ${model.config.dim}`);
    });
    const includeLastLayer = parsed.include_last_layer ?? false;
    return {
      recycleFraction: parsed.recycle_fraction ?? VAR_DEFAULTS.recycle_fraction,
      minNonsinkRatio: parsed.min_nonsink_ratio ?? VAR_DEFAULTS.min_nonsink_ratio,
      minImageAttention: parsed.min_image_attention ?? VAR_DEFAULTS.min_image_attention,
      tau,
      sinkDims: [...new Set(dims)].sort((a, b) => a - b),
      includeLastLayer,
      layers: varLayers(model.config.nLayers, includeLastLayer),
      nLayers: model.config.nLayers,
      dim: model.config.dim,
    };
  },

  checkPrompt: (_cfg, prompt) => (prompt.images.length ? null : 'VAR needs an image in the prompt: it moves attention onto image tokens'),

  isActive: (cfg) => cfg.recycleFraction > 0 && cfg.sinkDims.length > 0 && cfg.layers.length > 0,
  // Chunks are exact: a query row only sees keys up to itself, whose sink flags are already in the state.
  needsWholePrefill: () => false,

  fragments(model) {
    if (!model.vision) return [];
    checkProfile(model);
    const layers = new Set(varCompiledLayers(model.config.nLayers));
    const on = (l: number) => layers.has(l);
    return [
      { owner: 'var', hook: 'hook_resid_pre', layers: on, build: (x, ctx) => (ctx.local.set(FRESH, detectSinks(x, ctx)), x) },
      { owner: 'var', hook: 'attn.hook_pattern', layers: on, build: redistribute },
    ] satisfies HookFragment[];
  },

  createMemo: (cfg) => ({ editedPrefill: new Map(cfg.layers.map((l) => [l, 0])), editedDecode: 0, sinks: null, visual: new Set() }),

  writeInputs(cfg: VarConfig, row: RowStep, inputs: RowInputWriter) {
    // Decode steps keep τ = +∞ (the identity): generated tokens are never sinks.
    if (row.isPrefill) {
      inputs.set(names.tau, cfg.tau);
      if (cfg.includeLastLayer) inputs.set(names.tauLast, cfg.tau);
    }
    inputs.set(names.sinkDims, sinkDimMask(cfg));
    const start = queryStart(row.images);
    const minImage = new Float32Array(row.paddedNewTokens).fill(Infinity);
    for (let t = 0; t < row.newTokens; t++) if (row.past + t >= start) minImage[t] = cfg.minImageAttention;
    inputs.set(names.minImage, minImage);
    const maxSinkRatio = 1 - cfg.minNonsinkRatio;
    inputs.set(names.maxSinkRatio, maxSinkRatio);
    inputs.set(names.recycle, cfg.recycleFraction);
    inputs.set(names.ratioSlack, maxSinkRatio * row.images.reduce((n, s) => n + s.length, 0) * VAR_EPS);
  },

  afterStep(cfg, row, memo, taps: Taps) {
    for (const l of cfg.layers) {
      const tap = taps.get(names.edited(l));
      if (!tap) continue;
      const [H, T] = tap.dims as [number, number, number];
      let n = 0;
      for (let h = 0; h < H; h++) for (let t = 0; t < row.newTokens; t++) n += tap.data[h * T + t]!;
      if (row.isPrefill) memo.editedPrefill.set(l, memo.editedPrefill.get(l)! + n);
      else memo.editedDecode += n;
    }
    if (!row.isPrefill || row.past + row.newTokens !== row.promptLength) return;
    memo.sinks = new Map(cfg.layers.map((l) => {
      const flags = row.state(names.sinks(l));
      const at: number[] = [];
      for (let p = 0; p < row.promptLength; p++) if (flags[p] === 1) at.push(p);
      return [l, at];
    }));
    memo.visual = visualPositions(row.images);
  },

  report(cfg, memo, detail: CalibrationDetail) {
    const sinks = memo.sinks ?? new Map<number, number[]>();
    const visualOf = (l: number) => (sinks.get(l) ?? []).filter((p) => memo.visual.has(p));
    const sum = (f: (l: number) => number) => cfg.layers.reduce((a, l) => a + f(l), 0);
    return {
      recycle_fraction: cfg.recycleFraction,
      min_nonsink_ratio: cfg.minNonsinkRatio,
      min_image_attention: cfg.minImageAttention,
      tau: cfg.tau,
      sink_dims: cfg.sinkDims,
      include_last_layer: cfg.includeLastLayer,
      // The same settings in the official code's inverted knobs (spec pitfall 1).
      official: { p: 1 - cfg.recycleFraction, rho: 1 - cfg.minNonsinkRatio, summ: cfg.minImageAttention },
      calibrated_layers: cfg.layers,
      sinks_found: sum((l) => sinks.get(l)?.length ?? 0),
      visual_sinks: sum((l) => visualOf(l).length),
      rows_edited: sum((l) => memo.editedPrefill.get(l) ?? 0),
      decode_rows_edited: memo.editedDecode,
      ...(detail === 'full'
        ? { layers: Object.fromEntries(cfg.layers.map((l) => [String(l), { sinks: sinks.get(l) ?? [], visual_sinks: visualOf(l), edited_rows: memo.editedPrefill.get(l) ?? 0 }])) }
        : {}),
    };
  },
};
