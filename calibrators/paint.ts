/**
 * PAINT (Arif et al., arXiv 2501.12206, "Fixing Imbalanced Attention to Mitigate In-Context
 * Hallucination of Large Vision-Language Model"), as specified in shared/specs/paint.md §10.
 *
 * Selection (once per image, from read-only taps on the vision tower; paint-selection.ts): "local"
 * patches by block-0 CLS attention, "summary" patches as IQR outliers of the feature block's CLS
 * attention, optional "spatial" patches (the spec's labelled fix of the released code).
 *
 * The edit, at `blocks.{l}.attn.hook_attn_scores` in layers 2..L−1 (or the profile's `paint.layers`),
 * every head, on the last real query row of the step: a → a + g·|a|, g = α on local keys, β on summary
 * keys, 0 elsewhere. At decode every step is edited; at prefill only the step that holds the last
 * prompt token, and only with `edit_prefill` (the released CFG runs leave it unedited). Per-row feeds:
 * `paint.key_gain` [K] (g per key slot, 0 when the step is not edited), `paint.layer_on` [L] and, when
 * the model profile has a head table, `paint.head_weight` [H, L] (the extension below). Masked
 * scores are −inf here, so the edit is routed with Where on g > 0 ∧ last query ∧ layer on: rows with
 * PAINT off (all gains 0) get their scores back bit for bit, and no 0·∞ reaches the softmax.
 *
 * Guidance (optional): a companion sequence (BOS + the text before and after the images, no edit)
 * decodes in lockstep, and `mixLogits` replaces the row's logits with
 * γ(lp_c − lp_u) + lp_u, −∞ where lp_c < log(cutoff) + max lp_c, before the logits processors.
 * Returned logprobs stay the conditional row's raw ones (vLLM's raw-output semantics).
 *
 * Head modulation (EXTENSION, not the released method, off by default): g is multiplied by a
 * per-[layer, head] weight from the model profile's `paint.head_weights`.
 */
import { z } from 'zod';
import { attr, type Value } from '../models/onnx/graph-builder.js';
import { DIM, type FragmentContext, type HookFragment } from '../models/compiler/hooks.js';
import { featureBlock } from '../models/checkpoint/vision-weights.js';
import type { VisionTapFragment } from '../models/compiler/vision-hooks.js';
import type { ModelProfile } from '../models/profiles/profile.js';
import { withoutImages } from '../models/compiler/step-geometry.js';
import { CalibrationConfigError, type Calibrator, type ImageSpan, type ModelFacts, type RowStep, type Taps } from './calibrator.js';
import { selectImageTokens, type ImageSelection } from './paint-selection.js';

export const PAINT_DEFAULTS = { alpha: 0.7, beta: 0.4, localRatio: 0.25, spatialRatio: 0, editPrefill: true, gamma: 1.1, cutoff: 0.1 } as const;

/** The companion sequence's name. */
export const UNCOND = 'uncond';

const LayerKey = z.string().regex(/^(0|[1-9]\d*)$/, 'layer keys are 0-based integers without leading zeros');

const GuidanceSchema = z
  .object({
    gamma: z.number().min(0).max(100).optional().describe('Guidance scale γ: final = γ(lp_c − lp_u) + lp_u. Default 1.1; 1 keeps the conditional distribution on the tokens that pass the cut.'),
    cutoff: z.number().gt(0).max(1).optional().describe('Plausibility cut: tokens with p_c < cutoff·max p_c are removed. Default 0.1.'),
  })
  .strict();

export const PaintConfigSchema = z
  .object({
    alpha: z.number().min(0).max(100).optional().describe('Boost on local image tokens: a → a + alpha·|a| on pre-softmax scores. Default 0.7.'),
    beta: z.number().min(0).max(100).optional().describe('Boost on summary image tokens (a token in both sets gets beta). Default 0.4.'),
    local_ratio: z.number().gt(0).max(1).optional().describe('Fraction of patches picked as local tokens by block-0 CLS attention. Default 0.25.'),
    spatial_ratio: z.number().min(0).lt(1).optional().describe('Fraction of patches added to the local set by received block-0 attention (the spec\'s fix of the released code). Default 0.'),
    layers: z.union([z.literal('default'), z.array(z.number().int().min(0))]).optional().describe('"default" (every PAINT layer of the model: 2..L−1 unless the profile says otherwise) or 0-based layers among them.'),
    edit_prefill: z.boolean().optional().describe('Edit the last prompt row at prefill too (default true); false reproduces the released CFG runs, whose first token is unedited.'),
    guidance: z.union([z.boolean(), z.null(), GuidanceSchema]).optional().describe('Classifier-free guidance from a companion stream without the image: false/null (default), true (defaults) or {"gamma", "cutoff"}. Needs one extra sequence slot.'),
    head_modulation: z.boolean().optional().describe('EXTENSION, not the released method: scale the boost per [layer, head] by the model profile\'s paint.head_weights. Default false.'),
  })
  .strict();

/** PAINT's section of a model profile. */
export const PaintProfileSchema = z
  .object({
    /** Layers that get the edit compiled in; default 2..L−1 (the released code edits 2..31 of 32). */
    layers: z.array(z.number().int().min(0)).optional(),
    /** The head-modulation extension: per layer, one non-negative weight per query head; layers not listed weigh 1. */
    head_weights: z.record(LayerKey, z.array(z.number().min(0).max(100))).optional(),
    /** How the table was made, for humans. */
    source: z.string().optional(),
  })
  .strict();
export type PaintProfile = z.infer<typeof PaintProfileSchema>;

export interface PaintConfig {
  alpha: number;
  beta: number;
  localRatio: number;
  spatialRatio: number;
  /** Edited layers, ascending (a subset of the compiled ones). */
  layers: number[];
  editPrefill: boolean;
  guidance: { gamma: number; cutoff: number } | null;
  headModulation: boolean;
  /** Model facts the per-step work needs without a model lookup. */
  nLayers: number;
  nHeads: number;
  featureBlock: number;
  /** Row-major [H, L] weights when head modulation is on. */
  headWeights: number[] | null;
}

export interface PaintMemo {
  /** Per image, once the tower has run. */
  images: ImageSelection[] | null;
  /** (sequence position, gain) of every boosted key, built on the first step from the row's spans. */
  keys: [number, number][] | null;
  gainBuffer: Float32Array | null;
  guidedSteps: number;
}

function paintProfile(profile: ModelProfile): PaintProfile | undefined {
  return profile.paint as PaintProfile | undefined;
}

/** 2..L−1, as the released code (layers 2..31 of LLaVA-1.5-7B's 32). */
export function defaultPaintLayers(nLayers: number): number[] {
  return Array.from({ length: Math.max(0, nLayers - 2) }, (_, i) => i + 2);
}

/** Layers that get PAINT's fragment in this model. */
export function paintLayers(model: ModelFacts): number[] {
  return paintProfile(model.profile)?.layers ?? defaultPaintLayers(model.config.nLayers);
}

/** A profile written for another model stops the engine at load. */
function checkProfile(model: ModelFacts): void {
  const profile = paintProfile(model.profile);
  if (!profile) return;
  const { nLayers, nHeads } = model.config;
  const where = `the PAINT profile of ${model.name}`;
  for (const l of paintLayers(model)) if (l >= nLayers) throw new Error(`${where} names layer ${l}, but the model has ${nLayers} layers`);
  const layers = new Set(paintLayers(model));
  for (const [key, weights] of Object.entries(profile.head_weights ?? {})) {
    if (!layers.has(Number(key))) throw new Error(`${where} has head weights for layer ${key}, which is not among its PAINT layers (${[...layers].join(', ')})`);
    if (weights.length !== nHeads) throw new Error(`${where} has ${weights.length} head weights for layer ${key}, but the model has ${nHeads} query heads`);
  }
}

/** The selection taps' patch axis (symbolic: the tap never needs the tower's config). */
const PATCHES_DIM = 'patches';

const inputNames = {
  keyGain: 'paint.key_gain',
  layerOn: 'paint.layer_on',
  headWeight: 'paint.head_weight',
};

/** Why PAINT cannot run on this model, or null. */
function unsupported(model: ModelFacts): string | null {
  const v = model.vision;
  if (!v) return `model ${model.name} has no vision tower; PAINT boosts image tokens picked by the tower's CLS attention`;
  if (!v.hasCls) return `the vision tower of ${model.name} has no CLS token, which PAINT's token selection reads`;
  if (!v.tokensArePatches) return `the image tokens of ${model.name} are not the tower's patches in raster order, which PAINT's selection assumes`;
  if (v.featureBlock < 0) return `model ${model.name} takes image features before any vision block, so PAINT has no feature-block attention to select summary tokens from`;
  return null;
}

// ---- graph ------------------------------------------------------------------------------------

function buildEdit(scores: Value, ctx: FragmentContext, withHeadWeights: boolean): Value {
  const { g, layer } = ctx;
  const { nLayers: L, nHeads: H } = ctx.config;
  const i64 = (v: number[]) => g.constInt64(v);
  const gain = ctx.rowInput(inputNames.keyGain, 'float32', [1, 1, DIM.keys], 0); // [B,1,1,K]
  // The cells this step may edit, shared by every layer: the last real query row × keys with g > 0.
  const cells = ctx.shared('cells', () => g.op('And', [
    g.op('Unsqueeze', [ctx.geometry('lastQuery'), i64([1, 3])]), // [B,1,T,1]
    g.op('Greater', [gain, g.constFloat(0)]),
  ]));
  const layerOn = g.op('Slice', [ctx.rowInput(inputNames.layerOn, 'bool', [L, 1, 1], 0), i64([layer]), i64([layer + 1]), i64([1])]); // [B,1,1,1]
  const boost = withHeadWeights
    ? g.op('Mul', [gain, g.op('Slice', [ctx.rowInput(inputNames.headWeight, 'float32', [H, L, 1], 1), i64([layer]), i64([layer + 1]), i64([2])])]) // [B,H,1,K]
    : gain;
  // a + g·|a|; where nothing is edited (masked −∞ scores included) the Where hands back a itself.
  const edited = g.op('Add', [scores, g.op('Mul', [boost, g.op('Abs', [scores])])]);
  return g.op('Where', [g.op('And', [cells, layerOn]), edited, scores]);
}

/**
 * Block-0 and feature-block CLS rows summed over heads, and block 0's head-mean column sums, over the
 * patches (`[images, patches]`). The patch axis is sliced to its end, so the tap reads nothing but the
 * attention map it is given.
 */
function selectionTaps(): VisionTapFragment {
  return {
    owner: 'paint',
    hook: 'attn.hook_pattern',
    layers: (l, c) => l === 0 || l === featureBlock(c),
    tap(pattern, ctx) {
      const { g, layer } = ctx;
      const i64 = (v: number[]) => g.constInt64(v);
      const patchesOf = (x: Value) => g.op('Slice', [x, i64([1]), i64([Number.MAX_SAFE_INTEGER]), i64([1])]); // [N,S] → [N,P]
      const cls = g.op('Slice', [pattern, i64([0]), i64([1]), i64([2])]); // [N,H,1,S]
      ctx.tap(`cls.${layer}`, patchesOf(g.op('ReduceSum', [cls, i64([1, 2])], { keepdims: attr.int(0) })), [PATCHES_DIM]);
      if (layer === 0) {
        const colsum = g.op('ReduceSum', [g.op('ReduceMean', [pattern], { axes: attr.ints([1]), keepdims: attr.int(0) }), i64([1])], { keepdims: attr.int(0) }); // [N,S]
        ctx.tap('colsum.0', patchesOf(colsum), [PATCHES_DIM]);
      }
    },
  };
}

// ---- guidance ---------------------------------------------------------------------------------

function logSumExp(x: ArrayLike<number>): { lse: number; max: number } {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  return { lse: max + Math.log(sum), max };
}

/**
 * PAI's logit-level guidance, in place on `own` (float64 arithmetic): own ← γ(lp_c − lp_u) + lp_u,
 * and −∞ wherever lp_c < log(cutoff) + max lp_c.
 */
export function guideLogits(own: Float32Array, uncond: ArrayLike<number>, gamma: number, cutoff: number): void {
  if (uncond.length !== own.length) throw new RangeError(`guidance: ${uncond.length} companion logits for ${own.length}`);
  const c = logSumExp(own);
  const u = logSumExp(uncond);
  const cut = Math.log(cutoff) + (c.max - c.lse);
  for (let i = 0; i < own.length; i++) {
    const lpC = own[i]! - c.lse;
    const lpU = uncond[i]! - u.lse;
    own[i] = lpC < cut ? -Infinity : gamma * (lpC - lpU) + lpU;
  }
}

// ---- per request ------------------------------------------------------------------------------

/** The (position, gain) pairs of a row's boosted keys. */
function boostedKeys(cfg: PaintConfig, images: readonly ImageSelection[], spans: readonly ImageSpan[]): [number, number][] {
  const keys: [number, number][] = [];
  for (const span of spans) {
    const sel = images[span.image];
    if (!sel) continue;
    if (cfg.alpha > 0) for (const p of sel.local) keys.push([span.start + p, cfg.alpha]);
    if (cfg.beta > 0) for (const p of sel.summary) keys.push([span.start + p, cfg.beta]);
  }
  return keys;
}

const layerMasks = new WeakMap<PaintConfig, Float32Array>();
function layerMask(cfg: PaintConfig): Float32Array {
  let m = layerMasks.get(cfg);
  if (!m) {
    m = new Float32Array(cfg.nLayers);
    for (const l of cfg.layers) m[l] = 1;
    layerMasks.set(cfg, m);
  }
  return m;
}

function editing(cfg: PaintConfig): boolean {
  return cfg.layers.length > 0 && (cfg.alpha > 0 || cfg.beta > 0);
}

function resolveGuidance(value: z.infer<typeof PaintConfigSchema>['guidance']): PaintConfig['guidance'] {
  if (value === undefined || value === null || value === false) return null;
  const g = value === true ? {} : value;
  return { gamma: g.gamma ?? PAINT_DEFAULTS.gamma, cutoff: g.cutoff ?? PAINT_DEFAULTS.cutoff };
}

export const paint: Calibrator<PaintConfig, PaintMemo> = {
  id: 'paint',
  summary: 'PAINT (arXiv 2501.12206): boosts image tokens picked by the vision tower\'s CLS attention in the last query row\'s attention scores; optional classifier-free guidance from a companion stream without the image.',
  schema: PaintConfigSchema,
  profileSchema: PaintProfileSchema,

  resolve(value, model) {
    const parsed = value === true ? {} : PaintConfigSchema.parse(value);
    const why = unsupported(model);
    if (why) throw new CalibrationConfigError([], why);
    const compiled = paintLayers(model);
    let layers = compiled;
    if (parsed.layers !== undefined && parsed.layers !== 'default') {
      const allowed = new Set(compiled);
      parsed.layers.forEach((l, i) => {
        if (!allowed.has(l)) throw new CalibrationConfigError(['layers', i], `layer ${l} has no PAINT fragment in this model; PAINT layers are ${compiled.join(', ')}`);
      });
      layers = [...new Set(parsed.layers)].sort((a, b) => a - b);
    }
    const headModulation = parsed.head_modulation ?? false;
    let headWeights: number[] | null = null;
    const { nLayers, nHeads } = model.config;
    if (headModulation) {
      const table = paintProfile(model.profile)?.head_weights;
      if (!table) throw new CalibrationConfigError(['head_modulation'], `model ${model.name} has no head table (paint.head_weights in its profile); head modulation is an extension that needs one`);
      headWeights = new Array<number>(nHeads * nLayers).fill(1);
      for (const [key, weights] of Object.entries(table)) weights.forEach((w, h) => (headWeights![h * nLayers + Number(key)] = w));
    }
    return {
      alpha: parsed.alpha ?? PAINT_DEFAULTS.alpha,
      beta: parsed.beta ?? PAINT_DEFAULTS.beta,
      localRatio: parsed.local_ratio ?? PAINT_DEFAULTS.localRatio,
      spatialRatio: parsed.spatial_ratio ?? PAINT_DEFAULTS.spatialRatio,
      layers,
      editPrefill: parsed.edit_prefill ?? PAINT_DEFAULTS.editPrefill,
      guidance: resolveGuidance(parsed.guidance),
      headModulation,
      nLayers,
      nHeads,
      featureBlock: model.vision!.featureBlock,
      headWeights,
    };
  },

  checkPrompt(cfg, prompt) {
    if (prompt.images.length === 0) return 'PAINT needs an image in the prompt: it boosts image tokens picked by the vision tower\'s CLS attention';
    if (cfg.guidance && withoutImages(prompt.promptIds, prompt.images).length === 0) return 'guidance needs text around the image: the prompt without its images is empty';
    return null;
  },

  isActive: (cfg) => editing(cfg) || cfg.guidance !== null,
  needsWholePrefill: () => false,
  extraSlots: (cfg) => (cfg.guidance ? 1 : 0),

  fragments(model) {
    if (unsupported(model)) return [];
    checkProfile(model);
    const layers = new Set(paintLayers(model));
    const withHeadWeights = paintProfile(model.profile)?.head_weights !== undefined;
    return [{ owner: 'paint', hook: 'attn.hook_attn_scores', layers: (l) => layers.has(l), build: (x, ctx) => buildEdit(x, ctx, withHeadWeights) } satisfies HookFragment];
  },

  visionTaps: (model) => (unsupported(model) ? [] : [selectionTaps()]),

  createMemo: () => ({ images: null, keys: null, gainBuffer: null, guidedSteps: 0 }),

  afterVision(cfg, memo, images: readonly Taps[]) {
    memo.images = images.map((taps) => {
      const get = (name: string) => {
        const t = taps.get(name);
        if (!t) throw new Error(`PAINT: the vision tower gave no '${name}' tap`);
        return t.data;
      };
      return selectImageTokens(
        { local: get('cls.0'), summary: get(`cls.${cfg.featureBlock}`), spatial: get('colsum.0') },
        { localRatio: cfg.localRatio, spatialRatio: cfg.spatialRatio },
      );
    });
  },

  auxiliary: (cfg, prompt) => (cfg.guidance ? [{ name: UNCOND, role: 'companion', promptIds: withoutImages(prompt.promptIds, prompt.images) }] : []),

  writeInputs(cfg, row: RowStep, inputs, memo) {
    if (cfg.headWeights) inputs.set(inputNames.headWeight, cfg.headWeights);
    // The last prompt row at prefill (with edit_prefill), and every decode row.
    const edits = row.isPrefill ? cfg.editPrefill && row.past + row.newTokens === row.promptLength : true;
    if (!edits || !editing(cfg) || !memo.images) return; // gains stay 0: nothing is edited this step
    memo.keys ??= boostedKeys(cfg, memo.images, row.images);
    const K = row.fedCap + row.paddedNewTokens;
    if (memo.gainBuffer?.length !== K) memo.gainBuffer = new Float32Array(K);
    const gains = memo.gainBuffer.fill(0);
    const inPast = Math.min(row.past, row.fedCap);
    for (const [pos, gain] of memo.keys) {
      if (pos < inPast) gains[pos] = gain;
      else if (pos >= row.past && pos < row.past + row.newTokens) gains[row.fedCap + pos - row.past] = gain;
    }
    inputs.set(inputNames.keyGain, gains);
    inputs.set(inputNames.layerOn, layerMask(cfg));
  },

  mixLogits(cfg, memo, own, companions) {
    if (!cfg.guidance) return;
    const uncond = companions.get(UNCOND);
    if (!uncond) throw new Error('PAINT guidance: the companion stream\'s logits are missing');
    guideLogits(own, uncond, cfg.guidance.gamma, cfg.guidance.cutoff);
    memo.guidedSteps++;
  },

  report(cfg, memo, detail) {
    const images = memo.images ?? [];
    const count = (pick: (s: ImageSelection) => number[]) => images.reduce((n, s) => n + pick(s).length, 0);
    return {
      alpha: cfg.alpha,
      beta: cfg.beta,
      local_tokens: count((s) => s.local),
      summary_tokens: count((s) => s.summary),
      ...(cfg.spatialRatio > 0 ? { spatial_tokens: count((s) => s.spatial) } : {}),
      ...(cfg.guidance ? { guided_steps: memo.guidedSteps } : {}),
      ...(detail === 'full' ? { images: images.map((s) => ({ local: s.local, summary: s.summary, spatial: s.spatial })) } : {}),
    };
  },
};
