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
 *  3. H_l is kept in per-row state and frozen: decode steps scale the same heads.
 *
 * The fragment is compiled into every layer of an LVLM; a per-row, per-layer gain (α on the request's
 * target layers, exactly 1 elsewhere) says where the scaling applies, so requests choose their layers.
 * Off rows and off layers multiply by exactly 1: bit-identical to the plain graph. Text-only models
 * get no fragment (VHR needs an image), so their calibrated graph pays nothing for it.
 */
import { z } from 'zod';
import { attr, type GraphBuilder, type Value } from '../models/onnx/graph-builder.js';
import type { FragmentContext, HookFragment } from '../models/compiler/hooks.js';
import type { ModelProfile } from '../models/profiles/profile.js';
import { withoutImages } from '../src/engine/sequences.js';
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
  /** How many text-only passes reported (exactly one per request). */
  prepasses: number;
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
  /** [L,1,1,1] f32: α on target layers, exactly 1 elsewhere (identity 1). */
  gain: 'vhr.gain',
  /** [1] bool: this step is the with-image prefill, which selects the heads. */
  select: 'vhr.select',
  /** [1] bool: VHD is the squared distance (else its square root). */
  squared: 'vhr.squared',
  /** [1] f32: the outlier filter runs when the layer's VHD std exceeds this: 1 (guard), −∞ (no guard), +∞ (filter off). */
  filterAboveStd: 'vhr.filter_above_std',
  /** [L,H,1,hd] f32: O_T, the text-only head outputs at the last prompt row. */
  text: 'vhr.text',
  /** State [L,H]: 1 for selected heads, frozen after the with-image prefill. */
  heads: 'vhr.heads',
} as const;

export const tapNames = {
  /** [L,H,hd]: every layer's head outputs at the last new row (what a prepass hands over). */
  zLast: 'z_last',
  /** [L,H]: VHD per layer and head at the last new row, before the outlier filter. */
  vhd: 'vhd',
} as const;

/** Graph values built at each layer and emitted once the last layer is compiled. */
interface Collected {
  zLast: Value[];
  vhd: Value[];
  heads: Value[];
  state: { value: Value; setNext(next: Value): void };
}
const collected = new WeakMap<GraphBuilder, Collected>();

/** Mean + unbiased std over the last axis (torch.mean + torch.std), keepdims; also returns the std. */
function meanPlusStd(g: GraphBuilder, x: Value, axis: number, n: number): { threshold: Value; std: Value } {
  const mean = g.op('ReduceMean', [x], { axes: attr.ints([axis]), keepdims: attr.int(1) });
  const sumSq = g.op('ReduceSumSquare', [g.op('Sub', [x, mean])], { axes: attr.ints([axis]), keepdims: attr.int(1) });
  const std = g.op('Sqrt', [g.op('Div', [sumSq, g.constFloat(n - 1)])]);
  return { threshold: g.op('Add', [mean, std]), std };
}

function buildFragment(compiledLayers: readonly number[]) {
  const lastCompiled = Math.max(...compiledLayers);
  return (zIn: Value, ctx: FragmentContext): Value => {
    const { g, layer, config } = ctx;
    const { nLayers: L, nHeads: H, headDim: hd } = config;
    const i64 = (v: number | number[]) => g.constInt64(v);
    const layerIndex = i64(layer); // a scalar index: Gather drops the layer axis

    // ---- per graph ------------------------------------------------------------------------------
    const text = ctx.rowInput(inputNames.text, 'float32', [L, H, 1, hd], 0); // [B,L,H,1,hd]
    const gain = ctx.rowInput(inputNames.gain, 'float32', [L, 1, 1, 1], 1); // [B,L,1,1,1]
    const select = ctx.rowInput(inputNames.select, 'bool', [1], 0); // [B,1]
    const squared = ctx.rowInput(inputNames.squared, 'bool', [1], 1); // [B,1]
    const filterAboveStd = ctx.rowInput(inputNames.filterAboveStd, 'float32', [1], Infinity); // [B,1]
    let acc = collected.get(g);
    if (!acc) {
      acc = { zLast: [], vhd: [], heads: [], state: ctx.rowState(inputNames.heads, [L, H], 'overwrite') };
      collected.set(g, acc);
    }
    // Each row's last real new row, as a GatherElements index over [B,H,T,hd]: [B,H,1,hd].
    const lastIndex = ctx.shared('last_index', () => {
      const last = g.op('ArgMax', [g.op('Cast', [ctx.geometry('lastQuery')], { to: attr.int(1) })], { axis: attr.int(1), keepdims: attr.int(1) }); // [B,1]
      return g.op('Expand', [g.op('Unsqueeze', [last, i64([2, 3])]), i64([1, H, 1, hd])]);
    });
    // TA's outlier test needs only O_T: every layer at once. [B,L,H] bool.
    const taHigh = ctx.shared('ta_high', () => {
      const ta = g.op('ReduceSumSquare', [text], { axes: attr.ints([3, 4]), keepdims: attr.int(0) }); // [B,L,H]
      return g.op('Greater', [ta, meanPlusStd(g, ta, 2, H).threshold]);
    });

    // ---- this layer ------------------------------------------------------------------------------
    const zLast = g.op('GatherElements', [zIn, lastIndex], { axis: attr.int(2) }); // [B,H,1,hd]
    const textL = g.op('Gather', [text, layerIndex], { axis: attr.int(1) }); // [B,H,1,hd]
    const sq = g.op('ReduceSumSquare', [g.op('Sub', [zLast, textL])], { axes: attr.ints([2, 3]), keepdims: attr.int(0) }); // [B,H]
    const vhd = g.op('Where', [squared, sq, g.op('Sqrt', [sq])]);
    // Outliers (spec §3.3): both VHD and TA above their mean + std, and the filter on for this row
    // (with the guard: std(vhd) > 1, on the chosen distance scale, before any zeroing).
    const v = meanPlusStd(g, vhd, 1, H);
    const filterOn = g.op('Greater', [v.std, filterAboveStd]); // [B,1]
    const outlier = g.op('And', [g.op('And', [g.op('Greater', [vhd, v.threshold]), g.op('Gather', [taHigh, layerIndex], { axis: attr.int(1) })]), filterOn]);
    const filtered = g.op('Where', [outlier, g.constFloat(0), vhd]);
    // The lower median sorted[(H−1)//2]: the largest of the (H−1)//2 + 1 smallest.
    const k = Math.floor((H - 1) / 2) + 1;
    const smallest = g.opMulti('TopK', [filtered, i64([k])], 2, { axis: attr.int(1), largest: attr.int(0), sorted: attr.int(1) })[0]!;
    const median = g.op('Slice', [smallest, i64([k - 1]), i64([k]), i64([1])]); // [B,1]
    const selected = g.op('Cast', [g.op('Greater', [filtered, median])], { to: attr.int(1) }); // [B,H] 0/1
    // Selected at the with-image prefill, frozen afterwards.
    const heads = g.op('Where', [select, selected, g.op('Gather', [acc.state.value, layerIndex], { axis: attr.int(1) })]);
    // α on the selected heads of target layers, exactly 1 everywhere else: z·1 is z bit for bit.
    const headGain = g.op('Where', [
      g.op('Unsqueeze', [g.op('Cast', [heads], { to: attr.int(9) }), i64([2, 3])]), // [B,H,1,1]
      g.op('Gather', [gain, layerIndex], { axis: attr.int(1) }), // [B,1,1,1]
      g.constFloat(1),
    ]);

    acc.zLast.push(zLast);
    acc.vhd.push(vhd);
    acc.heads.push(heads);
    if (layer === lastCompiled) {
      if (acc.heads.length !== L) throw new Error(`VHR's fragment must be compiled into every layer in order (got ${acc.heads.length} of ${L})`);
      const stack = (vs: Value[], dims: number[]) => g.op('Reshape', [g.op('Concat', vs, { axis: attr.int(1) }), i64([0, ...dims])]);
      acc.state.setNext(stack(acc.heads, [L, H]));
      ctx.tap(tapNames.zLast, stack(acc.zLast, [L, H, hd]), [L, H, hd]);
      ctx.tap(tapNames.vhd, stack(acc.vhd, [L, H]), [L, H]);
    }
    return g.op('Mul', [zIn, headGain]);
  };
}

/** Per-config feeds that never change between steps, built once. */
const gains = new WeakMap<VhrConfig, Float32Array>();
function gainFeed(cfg: VhrConfig): Float32Array {
  let gain = gains.get(cfg);
  if (!gain) {
    gain = new Float32Array(cfg.nLayers).fill(1);
    for (const l of cfg.layers) gain[l] = cfg.alpha;
    gains.set(cfg, gain);
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

  createMemo: () => ({ text: null, prepasses: 0, vhd: null, heads: null }),

  auxiliary: (_cfg, prompt) => [{ name: 'text', role: 'prepass', promptIds: withoutImages(prompt.promptIds, prompt.images) }],

  afterAuxiliary(_cfg, memo, _name, taps) {
    const tap = taps.get(tapNames.zLast);
    if (!tap) throw new Error('VHR\'s text-only pass returned no head outputs');
    memo.text = Float32Array.from(tap.data); // the tap is a view into the call's outputs
    memo.prepasses++;
  },

  writeInputs(cfg, row, inputs, memo) {
    inputs.set(inputNames.gain, gainFeed(cfg));
    inputs.set(inputNames.squared, cfg.distance === 'sq_l2' ? 1 : 0);
    inputs.set(inputNames.filterAboveStd, !cfg.outlierFilter ? Infinity : cfg.outlierGuard ? GUARD_STD : -Infinity);
    if (!isSelectStep(row)) return;
    if (!memo.text) throw new Error('VHR\'s with-image prefill ran before its text-only pass');
    inputs.set(inputNames.select, 1);
    inputs.set(inputNames.text, memo.text);
  },

  afterStep(cfg, row, memo, taps) {
    if (!isSelectStep(row)) return;
    const state = row.state(inputNames.heads);
    const vhd = taps.get(tapNames.vhd)!.data;
    const H = cfg.nHeads;
    memo.heads = perLayer(cfg.layers, (l) => Array.from({ length: H }, (_, h) => h).filter((h) => state[l * H + h]! > 0));
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
