/**
 * VHR, vision-aware head reinforcement (He et al., "Cracking the Code of Hallucination in LVLMs with
 * Vision-aware Head Divergence", CVPR/ACL 2025), as specified in shared/specs/vhr.md §10 (Option A).
 *
 * Per request:
 *  1. A text-only prepass (the prompt with its image tokens cut out, positions renumbered) runs first,
 *     in the plain model; it taps every layer's per-head output `hook_z` at its last row: O_T[l], [H, hd].
 *  2. The with-image prefill runs the whole prompt in one pass. At each layer's `attn.hook_z`, in
 *     forward order and inside the graph, so a layer sees the earlier layers already reinforced:
 *       vhd[h] = ‖z[h, last] − O_T[l][h]‖² (or its square root with `distance: "l2"`),
 *       ta[h]  = ‖O_T[l][h]‖²,
 *       heads whose vhd and ta both exceed their layer's mean + std (unbiased) get vhd = 0, only when
 *         the filter is on and (with the guard) std(vhd) > 1,
 *       H_l = { h : vhd[h] > sorted(vhd)[(H−1)//2] }  (the lower median),
 *     and the heads of H_l are scaled by α at every position before o_proj, so before the next layer.
 *  3. H_l is kept in per-row state, as per-head gains (α selected, 1 not), and frozen: decode steps
 *     scale the same heads.
 *
 * The fragment is compiled into every layer of an LVLM; a per-row, per-layer gain (α on the request's
 * target layers, exactly 1 elsewhere) says where the scaling applies, so requests choose their layers.
 * The selection is an `If` branch taken only on steps where some row selects; other steps (every
 * decode step) read the gains back from state and multiply. Gains start at 1 in every slot, so off
 * rows, off layers and unselected heads multiply by exactly 1: bit-identical to the plain graph.
 * Text-only models get no fragment (VHR needs an image), so their calibrated graph pays nothing for it.
 */
import { z } from 'zod';
import { attr, type GraphBuilder, type Value } from '../models/onnx/graph-builder.js';
import { DIM, type FragmentContext, type HookFragment } from '../models/compiler/hooks.js';
import type { ModelProfile } from '../models/profiles/profile.js';
import { withoutImages } from '../models/compiler/step-geometry.js';
import { CalibrationConfigError, type Calibrator, type CalibrationDetail, type ModelFacts, type RowStep } from './calibrator.js';

export const VHR_DEFAULTS = { alpha: 2, distance: 'sq_l2', outlierFilter: true, outlierGuard: true } as const;

/** α above this only overflows float32 somewhere downstream; the paper's useful range is (0, 4). */
export const VHR_MAX_ALPHA = 100;

/** The share of layers reinforced at the end of the stack: LLaVA-1.5-7B's last 14 of 32. */
const LAST_LAYERS_SHARE = 14 / 32;

/** The outlier filter's guard: it runs only when the layer's VHD spread exceeds this (spec §3.3). */
const GUARD_STD = 1;

export const VhrConfigSchema = z
  .object({
    alpha: z.number().gt(0).max(VHR_MAX_ALPHA).optional().describe('Scale of the selected heads\' outputs; 1 changes nothing. Default 2; (0, 4) is the useful range, 4 collapses generation.'),
    layers: z
      .union([z.literal('default'), z.array(z.number().int().min(0))])
      .optional()
      .describe('"default" (the model profile\'s vhr.layers, else layer 1 plus the last 14/32 of the layers) or a list of 0-based decoder layers.'),
    distance: z.enum(['sq_l2', 'l2']).optional().describe('VHD distance: squared L2 (the released code, default) or plain L2 (the paper\'s text).'),
    outlier_filter: z.boolean().optional().describe('Zero the VHD of heads whose VHD and text-only activation both exceed mean + std. Default true.'),
    outlier_guard: z.boolean().optional().describe('Run the outlier filter only when the layer\'s VHD std exceeds 1. Default true.'),
  })
  .strict();

/** VHR's section of a model profile. */
export const VhrProfileSchema = z
  .object({
    /** The layers `"layers": "default"` reinforces. */
    layers: z.array(z.number().int().min(0)).optional(),
  })
  .strict();
export type VhrProfile = z.infer<typeof VhrProfileSchema>;

export interface VhrConfig {
  alpha: number;
  /** Target layers, ascending, distinct. */
  layers: number[];
  distance: 'sq_l2' | 'l2';
  outlierFilter: boolean;
  outlierGuard: boolean;
  /** The model's shape, so per-step feeds need no model lookup. */
  nLayers: number;
  nHeads: number;
  headDim: number;
}

export interface VhrMemo {
  /** O_T from the text-only prepass: `[L, H, hd]` (every layer, though only target layers are read). */
  text: Float32Array | null;
  /** Per target layer, at the with-image prefill: VHD per head (before the outlier filter) and H_l. */
  vhd: Record<number, number[]> | null;
  heads: Record<number, number[]> | null;
}

function vhrProfile(profile: ModelProfile): VhrProfile | undefined {
  return profile.vhr as VhrProfile | undefined;
}

/** {1} ∪ the last ⌈(14/32)·L⌉ layers: LLaVA-1.5-7B's {1, 18..31} at its depth, scaled to others. */
export function defaultVhrLayers(nLayers: number): number[] {
  const last = Math.ceil(LAST_LAYERS_SHARE * nLayers);
  const layers = new Set([1, ...Array.from({ length: last }, (_, i) => nLayers - last + i)]);
  return [...layers].filter((l) => l >= 0 && l < nLayers).sort((a, b) => a - b);
}

/** The layers `"default"` means for this model. */
export function vhrDefaultLayers(model: ModelFacts): number[] {
  return vhrProfile(model.profile)?.layers ?? defaultVhrLayers(model.config.nLayers);
}

/** A profile written for another model must stop the engine at load, not surface as a client error. */
function checkProfile(model: ModelFacts): void {
  const layers = vhrProfile(model.profile)?.layers;
  const bad = layers?.find((l) => l >= model.config.nLayers);
  if (bad !== undefined) throw new Error(`the VHR profile of ${model.name} names layer ${bad}, but the model has ${model.config.nLayers} layers`);
}

export const inputNames = {
  /** [L,1,1,1] f32: α on the request's target layers, exactly 1 elsewhere (identity 1). */
  layerGain: 'vhr.layer_gain',
  /** [1,1,1] bool: this step is the with-image prefill, which selects the heads. */
  select: 'vhr.select',
  /** [1] bool: VHD is the squared distance (else its square root). */
  squared: 'vhr.squared',
  /** [1] f32: the outlier filter runs when the layer's VHD std exceeds this: 1 (guard), −∞ (no guard), +∞ (filter off). */
  filterAboveStd: 'vhr.filter_above_std',
  /** [L,H,1,hd] f32: O_T, the text-only head outputs at the last prompt row. */
  text: 'vhr.text',
  /** State [L,H,1,1], initially 1: each head's gain, α for the selected heads of target layers, frozen after the with-image prefill. */
  headGain: 'vhr.head_gain',
} as const;

export const tapNames = {
  /** [L,H,hd]: every layer's head outputs at the last new row (what a prepass hands over). */
  zLast: 'z_last',
  /** [L,H]: VHD per layer and head at the last new row, before the outlier filter (only on a step where some row selects). */
  vhd: 'vhd',
} as const;

/** Graph values built at each layer and emitted once the last layer is compiled. */
interface Collected {
  zLast: Value[];
  vhd: Value[];
  gains: Value[];
  state: { value: Value; setNext(next: Value): void };
}
const collected = new WeakMap<GraphBuilder, Collected>();

/** Mean + unbiased std over one axis (torch.mean + torch.std), keepdims; also returns the std. */
function meanPlusStd(g: GraphBuilder, x: Value, axis: number, n: number): { threshold: Value; std: Value } {
  const mean = g.op('ReduceMean', [x], { axes: attr.ints([axis]), keepdims: attr.int(1) });
  const sumSq = g.op('ReduceSumSquare', [g.op('Sub', [x, mean])], { axes: attr.ints([axis]), keepdims: attr.int(1) });
  const std = g.op('Sqrt', [g.op('Div', [sumSq, g.constFloat(n - 1)])]);
  return { threshold: g.op('Add', [mean, std]), std };
}

/** The per-row inputs of one graph, declared once. */
function rowInputs(ctx: FragmentContext) {
  const { nLayers: L, nHeads: H, headDim: hd } = ctx.config;
  return {
    text: ctx.rowInput(inputNames.text, 'float32', [L, H, 1, hd], 0), // [B,L,H,1,hd]
    layerGain: ctx.rowInput(inputNames.layerGain, 'float32', [L, 1, 1, 1], 1), // [B,L,1,1,1]
    select: ctx.rowInput(inputNames.select, 'bool', [1, 1, 1], 0), // [B,1,1,1]
    squared: ctx.rowInput(inputNames.squared, 'bool', [1], 1), // [B,1]
    filterAboveStd: ctx.rowInput(inputNames.filterAboveStd, 'float32', [1], Infinity), // [B,1]
  };
}

/**
 * One layer's selection (spec §3.3) for every row of the step, as an `If` branch: VHD of the last
 * row's head outputs against O_T, the outlier filter, the lower median, and the heads' gains (α for
 * the selected heads of a target layer, else 1) for rows that select this step; the other rows keep
 * theirs. Outputs `[gains, vhd]`, both [B,H,1,1].
 */
function selectionBranch(g: GraphBuilder, ctx: FragmentContext, zLast: Value, previous: Value): GraphBuilder {
  const { nHeads: H } = ctx.config;
  const i64 = (v: number | number[]) => g.constInt64(v);
  const layer = i64(ctx.layer);
  const { text, layerGain, select, squared, filterAboveStd } = rowInputs(ctx);
  const b = g.subgraph(`vhr_select_${ctx.layer}`);
  const textL = b.op('Gather', [text, layer], { axis: attr.int(1) }); // [B,H,1,hd]
  const sq = b.op('ReduceSumSquare', [b.op('Sub', [zLast, textL])], { axes: attr.ints([2, 3]), keepdims: attr.int(0) }); // [B,H]
  const vhd = b.op('Where', [squared, sq, b.op('Sqrt', [sq])]);
  // Outliers: both VHD and TA (‖O_T‖²) above their mean + std, and the filter on for the row (with
  // the guard: std(VHD) > 1, on the chosen distance scale, before any zeroing).
  const ta = b.op('ReduceSumSquare', [textL], { axes: attr.ints([2, 3]), keepdims: attr.int(0) }); // [B,H]
  const v = meanPlusStd(b, vhd, 1, H);
  const high = b.op('And', [b.op('Greater', [vhd, v.threshold]), b.op('Greater', [ta, meanPlusStd(b, ta, 1, H).threshold])]);
  const outlier = b.op('And', [high, b.op('Greater', [v.std, filterAboveStd])]);
  const filtered = b.op('Where', [outlier, b.constFloat(0), vhd]);
  // The lower median sorted[(H−1)//2]: the largest of the (H−1)//2 + 1 smallest.
  const k = Math.floor((H - 1) / 2) + 1;
  const smallest = b.opMulti('TopK', [filtered, i64([k])], 2, { axis: attr.int(1), largest: attr.int(0), sorted: attr.int(1) })[0]!;
  const median = b.op('Slice', [smallest, i64([k - 1]), i64([k]), i64([1])]); // [B,1]
  const toGrid = (x: Value) => b.op('Unsqueeze', [x, i64([2, 3])]); // [B,H] → [B,H,1,1]
  const selected = toGrid(b.op('Greater', [filtered, median]));
  const gains = b.op('Where', [selected, b.op('Gather', [layerGain, layer], { axis: attr.int(1) }), b.constFloat(1)]);
  b.output(b.op('Where', [select, gains, previous]), 'float32', [DIM.batch, H, 1, 1]);
  b.output(toGrid(vhd), 'float32', [DIM.batch, H, 1, 1]);
  return b;
}

function buildFragment(compiledLayers: readonly number[]) {
  const lastCompiled = Math.max(...compiledLayers);
  return (zIn: Value, ctx: FragmentContext): Value => {
    const { g, layer, config } = ctx;
    const { nLayers: L, nHeads: H, headDim: hd } = config;
    const i64 = (v: number | number[]) => g.constInt64(v);
    const { select } = rowInputs(ctx);
    let acc = collected.get(g);
    if (!acc) {
      // Initially 1: rows that never select (VHR off, prepasses) scale nothing.
      acc = { zLast: [], vhd: [], gains: [], state: ctx.rowState(inputNames.headGain, [L, H, 1, 1], 'overwrite', 1) };
      collected.set(g, acc);
    }
    // Each row's last real new row, as a GatherElements index over [B,H,T,hd]: [B,H,1,hd].
    const lastIndex = ctx.shared('last_index', () => {
      const last = g.op('ArgMax', [g.op('Cast', [ctx.geometry('lastQuery')], { to: attr.int(1) })], { axis: attr.int(1), keepdims: attr.int(1) }); // [B,1]
      return g.op('Expand', [g.op('Unsqueeze', [last, i64([2, 3])]), i64([1, H, 1, hd])]);
    });
    // Does any row select this step? Decode steps never do: they skip the selection subgraph.
    const anySelect = ctx.shared('any_select', () =>
      g.op('Cast', [g.op('ReduceMax', [g.op('Cast', [select], { to: attr.int(1) })], { keepdims: attr.int(0) })], { to: attr.int(9) }));

    const zLast = g.op('GatherElements', [zIn, lastIndex], { axis: attr.int(2) }); // [B,H,1,hd]
    const previous = g.op('Gather', [acc.state.value, i64(layer)], { axis: attr.int(1) }); // [B,H,1,1]
    const keep = g.subgraph(`vhr_keep_${layer}`);
    keep.output(previous, 'float32', [DIM.batch, H, 1, 1]);
    keep.output(previous, 'float32', [DIM.batch, H, 1, 1]); // no VHD on a step without a selection
    const [gains, vhd] = g.opMulti('If', [anySelect], 2, {
      then_branch: attr.graph(selectionBranch(g, ctx, zLast, previous)),
      else_branch: attr.graph(keep),
    }) as [Value, Value];

    acc.zLast.push(zLast);
    acc.vhd.push(vhd);
    acc.gains.push(gains);
    if (layer === lastCompiled) {
      if (acc.gains.length !== L) throw new Error(`VHR's fragment must be compiled into every layer in order (got ${acc.gains.length} of ${L})`);
      const stack = (vs: Value[], dims: number[]) => g.op('Reshape', [g.op('Concat', vs, { axis: attr.int(1) }), i64([0, ...dims])]);
      acc.state.setNext(stack(acc.gains, [L, H, 1, 1]));
      ctx.tap(tapNames.zLast, stack(acc.zLast, [L, H, hd]), [L, H, hd]);
      ctx.tap(tapNames.vhd, stack(acc.vhd, [L, H]), [L, H]);
    }
    // Gains are exactly 1 on every head not selected, every layer not targeted and every row
    // without VHR: z·1 is z bit for bit.
    return g.op('Mul', [zIn, gains]);
  };
}

/** Per-config feeds that never change between steps, built once. */
const layerGains = new WeakMap<VhrConfig, Float32Array>();
function layerGainFeed(cfg: VhrConfig): Float32Array {
  let gain = layerGains.get(cfg);
  if (!gain) {
    gain = new Float32Array(cfg.nLayers).fill(1);
    for (const l of cfg.layers) gain[l] = cfg.alpha;
    layerGains.set(cfg, gain);
  }
  return gain;
}

/** The with-image prefill: the whole prompt in one step (VHR needs whole prefill). */
const isSelectStep = (row: RowStep): boolean => row.isPrefill && row.past === 0 && row.newTokens === row.promptLength;

const perLayer = <T>(layers: readonly number[], f: (l: number) => T): Record<number, T> => Object.fromEntries(layers.map((l) => [l, f(l)]));

export const vhr: Calibrator<VhrConfig, VhrMemo> = {
  id: 'vhr',
  summary: 'Vision-aware head reinforcement (VHR, ACL 2025): a text-only prepass, then per layer the heads whose output moves most with the image are scaled by alpha.',
  schema: VhrConfigSchema,
  profileSchema: VhrProfileSchema,

  resolve(value, model) {
    if (!model.vision) throw new CalibrationConfigError([], `model ${model.name} has no vision tower; VHR compares head outputs with and without an image`);
    const parsed = value === true ? {} : VhrConfigSchema.parse(value);
    const { nLayers, nHeads, headDim } = model.config;
    const asked = parsed.layers ?? 'default';
    const list = asked === 'default' ? vhrDefaultLayers(model) : asked;
    list.forEach((l, i) => {
      if (l >= nLayers) throw new CalibrationConfigError(['layers', i], `layer ${l} does not exist; the model has ${nLayers} layers (0-based)`);
    });
    return {
      alpha: parsed.alpha ?? VHR_DEFAULTS.alpha,
      layers: [...new Set(list)].sort((a, b) => a - b),
      distance: parsed.distance ?? VHR_DEFAULTS.distance,
      outlierFilter: parsed.outlier_filter ?? VHR_DEFAULTS.outlierFilter,
      outlierGuard: parsed.outlier_guard ?? VHR_DEFAULTS.outlierGuard,
      nLayers,
      nHeads,
      headDim,
    };
  },

  checkPrompt(_cfg, prompt, model) {
    if (!prompt.images.length) return 'VHR compares each head\'s output with and without the image, and the prompt has no image';
    if (!withoutImages(prompt.promptIds, prompt.images).length) return 'the prompt is nothing but image tokens; VHR\'s text-only pass needs some text';
    return model.vision ? null : `model ${model.name} has no vision tower`;
  },

  isActive: (cfg) => cfg.alpha !== 1 && cfg.layers.length > 0,
  // The heads chosen at the last prompt row scale every prompt position: one pass.
  needsWholePrefill: () => true,
  extraSlots: () => 1,

  fragments(model) {
    // Text-only models cannot run VHR; their calibrated graph carries none of it.
    if (!model.vision) return [];
    checkProfile(model);
    const layers = Array.from({ length: model.config.nLayers }, (_, l) => l);
    return [{ owner: 'vhr', hook: 'attn.hook_z', build: buildFragment(layers) } satisfies HookFragment];
  },

  createMemo: () => ({ text: null, vhd: null, heads: null }),

  auxiliary: (_cfg, prompt) => [{ name: 'text', role: 'prepass', promptIds: withoutImages(prompt.promptIds, prompt.images) }],

  afterAuxiliary(_cfg, memo, _name, taps) {
    const tap = taps.get(tapNames.zLast);
    if (!tap) throw new Error('VHR\'s text-only pass returned no head outputs');
    memo.text = Float32Array.from(tap.data); // the tap is a view into the call's outputs
  },

  writeInputs(cfg, row, inputs, memo) {
    // Only the selecting step reads VHR's inputs; every other step reads the gains from state.
    if (!isSelectStep(row)) return;
    if (!memo.text) throw new Error('VHR\'s with-image prefill ran before its text-only pass');
    inputs.set(inputNames.select, 1);
    inputs.set(inputNames.layerGain, layerGainFeed(cfg));
    inputs.set(inputNames.squared, cfg.distance === 'sq_l2' ? 1 : 0);
    inputs.set(inputNames.filterAboveStd, !cfg.outlierFilter ? Infinity : cfg.outlierGuard ? GUARD_STD : -Infinity);
    inputs.set(inputNames.text, memo.text);
  },

  afterStep(cfg, row, memo, taps) {
    if (!isSelectStep(row)) return;
    const gains = row.state(inputNames.headGain);
    const vhd = taps.get(tapNames.vhd)!.data;
    const H = cfg.nHeads;
    // Target layers have α ≠ 1 (an active config), so a head is selected where its gain is not 1.
    memo.heads = perLayer(cfg.layers, (l) => Array.from({ length: H }, (_, h) => h).filter((h) => gains[l * H + h] !== 1));
    memo.vhd = perLayer(cfg.layers, (l) => Array.from(vhd.subarray(l * H, (l + 1) * H)));
  },

  report(cfg, memo, detail: CalibrationDetail) {
    const heads = memo.heads ?? {};
    return {
      alpha: cfg.alpha,
      layers: cfg.layers,
      heads_selected: Object.values(heads).reduce((a, hs) => a + hs.length, 0),
      heads_selected_per_layer: perLayer(cfg.layers, (l) => heads[l]?.length ?? 0),
      ...(detail === 'full' ? { heads, vhd: memo.vhd ?? {} } : {}),
    };
  },
};
