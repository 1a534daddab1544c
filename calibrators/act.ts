/**
 * ACT, attention-sink calibration (Yu et al., ICML 2024), faithful to the official code
 * (GATECH-EIC/ACT @ a267af7) as specified in shared/specs/act.md.
 *
 * At `blocks.{l}.attn.hook_pattern`, per row and calibrated query head:
 *   score[j] = (Σ_i A[i,j]) / (number of queries that can see j), over every query so far: the
 *     running column sums of the *original* attention live in per-row state, so a decode step's
 *     score equals the prefill score over all queries so far;
 *   D = {j : score[j] > τ}, S = D without its lowest-index member;
 *   sink columns are scaled by β and the freed mass goes to the non-sink keys of the same row in
 *   proportion to their original attention (the spared key included). No `[0,0] = 1` override;
 *   a row with no non-sink mass (none, or at most 2^-126) is left unchanged (the 0/0 guard).
 * The prompt is prefilled in one pass, so prefill matches the official single-forward semantics.
 *
 * Heads that are off, and rows with ACT off, get both gains = 1 while one of the two terms is
 * exactly 0, so they stay bit-identical to the plain graph. Rows with ACT off entirely run the
 * plain graph.
 */
import { z } from 'zod';
import { attr, type Value } from '../models/onnx/graph-builder.js';
import { DIM, KEYS_AXIS, type FragmentContext, type HookFragment } from '../models/compiler/hooks.js';
import { HeadSetSchema, type ModelProfile } from '../models/profiles/profile.js';
import { CalibrationConfigError, type Calibrator, type CalibrationDetail, type ModelFacts, type RowInputWriter, type RowStep } from './calibrator.js';
import { sinkSet } from './act-sinks.js';

export const ACT_DEFAULTS = { beta: 0.4, threshold: 0.1 } as const;

/** 2^-126: non-sink mass up to this is treated as zero (the 0/0 guard), see buildFragment. */
export const SMALLEST_NORMAL_F32 = 2 ** -126;

export const ActConfigSchema = z
  .object({
    beta: z.number().min(0).max(1).optional().describe('Scale applied to sink columns; 1 changes nothing. Default 0.4 (or the model profile).'),
    threshold: z.number().gt(0).max(1).optional().describe('A key is a sink when its mean received attention exceeds this. Default 0.1 (or the model profile).'),
    heads: z
      .union([z.literal('profile'), HeadSetSchema])
      .optional()
      .describe('"profile" (the model profile\'s head set, the default) or {"<layer>": [query heads]}, 0-based, heads after GQA expansion.'),
  })
  .strict();

/** ACT's section of a model profile: a searched head set and the settings it was searched with. */
export const ActProfileSchema = z
  .object({
    heads: HeadSetSchema,
    /** Layers that get ACT fragments; default 2..L-1, as the official code never calibrates 0 and 1. */
    layers: z.array(z.number().int().min(0)).optional(),
    beta: z.number().min(0).max(1).optional(),
    threshold: z.number().gt(0).max(1).optional(),
    /** How the head set was made, for humans. */
    source: z.string().optional(),
  })
  .strict();
export type ActProfile = z.infer<typeof ActProfileSchema>;

/** The profile's ACT section (validated with ActProfileSchema when the profile was loaded). */
export function actProfile(profile: ModelProfile): ActProfile | undefined {
  return profile.act as ActProfile | undefined;
}

export interface ActConfig {
  beta: number;
  threshold: number;
  /** Layer → sorted, distinct query heads. Only layers with heads appear. */
  heads: Record<number, number[]>;
  /** The model's query-head count, so per-step feeds need no model lookup. */
  queryHeads: number;
}

export interface ActMemo {
  /** Layer → head → positions of S at the end of prefill. */
  prefillSinks: Record<number, Record<number, number[]>> | null;
}

/** 2..L−1: the official code never calibrates layers 0 and 1. */
export function defaultActLayers(nLayers: number): number[] {
  return Array.from({ length: Math.max(0, nLayers - 2) }, (_, i) => i + 2);
}

/** Layers that get ACT fragments for this model. */
export function actLayers(model: ModelFacts): number[] {
  return actLayersFor(model.profile, model.config.nLayers);
}

/** The same, from a profile and a depth alone (before an engine has loaded the model). */
export function actLayersFor(profile: ModelProfile, nLayers: number): number[] {
  return actProfile(profile)?.layers ?? defaultActLayers(nLayers);
}

/**
 * A profile written for another model must stop the engine at load, not surface later as a client
 * error (or a failed forward) on requests that only asked for `"act": true`.
 */
function checkProfile(model: ModelFacts): void {
  const { nLayers, nHeads } = model.config;
  const profile = actProfile(model.profile);
  if (!profile) return;
  const where = `the ACT profile of ${model.name}`;
  for (const l of actLayers(model)) if (l >= nLayers) throw new Error(`${where} names layer ${l}, but the model has ${nLayers} layers`);
  const layers = new Set(actLayers(model));
  for (const [key, heads] of Object.entries(profile.heads)) {
    if (!layers.has(Number(key))) throw new Error(`${where} has heads in layer ${key}, which is not among its ACT layers (${[...layers].join(', ')})`);
    const bad = heads.find((h) => h >= nHeads);
    if (bad !== undefined) throw new Error(`${where} names head ${bad} in layer ${key}, but the model has ${nHeads} query heads`);
  }
}

const inputNames = {
  divisor: 'act.divisor',
  tau: 'act.tau',
  beta: 'act.beta',
  heads: (l: number) => `act.heads.${l}`,
  colsum: (l: number) => `act.colsum.${l}`,
};

function buildFragment(A: Value, ctx: FragmentContext): Value {
  const { g, layer } = ctx;
  const H = ctx.config.nHeads;
  const i64 = (v: number[]) => g.constInt64(v);
  // Per row, once per step: τ·(n − position) for every key, +∞ for empty or padded keys.
  const threshold = ctx.shared('threshold', () =>
    g.op('Mul', [ctx.rowInput(inputNames.tau, 'float32', [1, 1, 1], Infinity), ctx.rowInput(inputNames.divisor, 'float32', [1, 1, DIM.keys], 1)]));
  const beta = ctx.rowInput(inputNames.beta, 'float32', [1, 1, 1], 1);
  const oneMinusBeta = ctx.shared('one_minus_beta', () => g.op('Sub', [g.constFloat(1), beta]));
  // Per row and head of this layer: calibrated or not.
  const headOn = ctx.rowInput(inputNames.heads(layer), 'bool', [H, 1, 1], 0);
  const padNew = ctx.shared('pad_new', () =>
    g.op('Concat', [i64([0, 0, 0, 0, 0, 0, 0]), g.op('Slice', [g.op('Shape', [A]), i64([2]), i64([3])])], { axis: attr.int(0) }));
  const zeroPerHead = ctx.shared('zero_per_head', () => g.op('ConstantOfShape', [g.op('Shape', [headOn])]));

  // Running column sums of the original attention: [B,H,1,K]. Padding query rows attend only to
  // their own padding key (step-feeds.ts), so summing every query row is exact for real keys.
  const state = ctx.rowState(inputNames.colsum(layer), [H, 1, KEYS_AXIS], 'replace');
  const colsum = g.op('Add', [g.op('Pad', [state.value, padNew]), g.op('ReduceSum', [A, i64([2])], { keepdims: attr.int(1) })]);
  state.setNext(colsum);

  // score > τ  ⇔  colsum > τ·(n − j). Keys are in position order, so the first detected key is
  // ArgMax's first maximum; with nothing detected ArgMax says 0, which is not detected either.
  const detected = g.op('Cast', [g.op('Greater', [colsum, threshold])], { to: attr.int(1) });
  const first = g.op('ArgMax', [detected], { axis: attr.int(3), keepdims: attr.int(1) });
  const sinks = g.op('ScatterElements', [detected, first, zeroPerHead], { axis: attr.int(3) }); // [B,H,1,K], 1.0 on S

  const onSinks = g.op('Mul', [A, sinks]);
  const rest = g.op('Sub', [A, onSinks]);
  const sinkMass = g.op('ReduceSum', [onSinks, i64([-1])], { keepdims: attr.int(1) });
  const restMass = g.op('ReduceSum', [rest, i64([-1])], { keepdims: attr.int(1) });
  // Â = β·A_S + rest·(1 + (1−β)·sinkMass/restMass). Uncalibrated heads, and rows with no non-sink
  // mass (0/0), get both gains = 1, and rest·1 + A_S·1 is A bit for bit (one term is exactly 0).
  // Non-sink mass up to the smallest normal float counts as none: dividing by less overflows the gain
  // to Inf (the official fp16 code would hold such mass as exactly 0).
  const keep = g.op('And', [headOn, g.op('Greater', [restMass, g.constFloat(SMALLEST_NORMAL_F32)])]);
  const one = g.constFloat(1);
  const restGain = g.op('Where', [keep, g.op('Add', [one, g.op('Mul', [oneMinusBeta, g.op('Div', [sinkMass, restMass])])]), one]);
  const sinkGain = g.op('Where', [keep, beta, one]);
  return g.op('Add', [g.op('Mul', [rest, restGain]), g.op('Mul', [onSinks, sinkGain])]);
}

/** Per-layer 0/1 head masks, built once per request config rather than every step. */
const masks = new WeakMap<ActConfig, [number, Float32Array][]>();
function headMasks(cfg: ActConfig): [number, Float32Array][] {
  let m = masks.get(cfg);
  if (!m) {
    m = Object.entries(cfg.heads).map(([layer, heads]) => {
      const on = new Float32Array(cfg.queryHeads);
      for (const h of heads) on[h] = 1;
      return [Number(layer), on];
    });
    masks.set(cfg, m);
  }
  return m;
}

export const act: Calibrator<ActConfig, ActMemo> = {
  id: 'act',
  summary: 'Attention-sink calibration (ACT, ICML 2024): scales hidden attention sinks by beta and redistributes their mass, per head.',
  schema: ActConfigSchema,
  profileSchema: ActProfileSchema,

  resolve(value, model) {
    const parsed = value === true ? {} : ActConfigSchema.parse(value);
    const profile = actProfile(model.profile);
    const beta = parsed.beta ?? profile?.beta ?? ACT_DEFAULTS.beta;
    const threshold = parsed.threshold ?? profile?.threshold ?? ACT_DEFAULTS.threshold;
    let headSet = parsed.heads ?? 'profile';
    if (headSet === 'profile') {
      if (!profile) {
        throw new CalibrationConfigError(['heads'],
          `model ${model.name} has no ACT head profile. Make one with \`attune profile act --model ${model.name} --data calib.jsonl --out attune-profile.json\` ` +
          `and place it next to the weights (or at models/profiles/${model.name}.json), or pass explicit heads, e.g. {"heads": {"2": [0, 1]}}`);
      }
      headSet = profile.heads;
    }
    const layers = new Set(actLayers(model));
    const heads: Record<number, number[]> = {};
    for (const [key, list] of Object.entries(headSet)) {
      const layer = Number(key);
      if (!layers.has(layer)) {
        throw new CalibrationConfigError(['heads', key], `layer ${key} has no ACT fragment in this model; calibratable layers are ${[...layers].join(', ')}`);
      }
      list.forEach((h, i) => {
        if (h >= model.config.nHeads) throw new CalibrationConfigError(['heads', key, i], `head ${h} does not exist; the model has ${model.config.nHeads} query heads (0-based)`);
      });
      const distinct = [...new Set(list)].sort((a, b) => a - b);
      if (distinct.length) heads[layer] = distinct;
    }
    return { beta, threshold, heads, queryHeads: model.config.nHeads };
  },

  isActive: (cfg) => cfg.beta < 1 && Object.keys(cfg.heads).length > 0,
  needsWholePrefill: () => true,

  fragments(model) {
    checkProfile(model);
    const layers = new Set(actLayers(model));
    return [{ owner: 'act', hook: 'attn.hook_pattern', layers: (l) => layers.has(l), build: buildFragment } satisfies HookFragment];
  },

  createMemo: () => ({ prefillSinks: null }),

  writeInputs(cfg: ActConfig, row: RowStep, inputs: RowInputWriter) {
    const n = row.past + row.newTokens;
    const divisor = new Float32Array(row.fedCap + row.paddedNewTokens).fill(Infinity);
    for (let j = 0; j < Math.min(row.past, row.fedCap); j++) divisor[j] = n - j;
    for (let t = 0; t < row.newTokens; t++) divisor[row.fedCap + t] = n - (row.past + t);
    inputs.set(inputNames.divisor, divisor);
    inputs.set(inputNames.tau, cfg.threshold);
    inputs.set(inputNames.beta, cfg.beta);
    // Layers without heads keep their identity input (no head calibrated).
    for (const [layer, on] of headMasks(cfg)) inputs.set(inputNames.heads(layer), on);
  },

  afterStep(cfg, row, memo) {
    const n = row.past + row.newTokens;
    if (!row.isPrefill || n !== row.promptLength) return;
    const sinks: Record<number, Record<number, number[]>> = {};
    for (const [layer, heads] of Object.entries(cfg.heads)) {
      const state = row.state(inputNames.colsum(Number(layer)));
      const perHead: Record<number, number[]> = {};
      for (const h of heads) perHead[h] = sinkSet(state.subarray(h * row.capacity, h * row.capacity + n), n, cfg.threshold);
      sinks[Number(layer)] = perHead;
    }
    memo.prefillSinks = sinks;
  },

  report(cfg, memo, detail: CalibrationDetail) {
    const headsCalibrated = Object.values(cfg.heads).reduce((a, hs) => a + hs.length, 0);
    const sinksDetected = memo.prefillSinks
      ? Object.values(memo.prefillSinks).reduce((a, hs) => a + Object.values(hs).reduce((b, s) => b + s.length, 0), 0)
      : 0;
    return {
      beta: cfg.beta,
      threshold: cfg.threshold,
      heads_calibrated: headsCalibrated,
      sinks_detected: sinksDetected,
      ...(detail === 'full' ? { prefill_sinks: memo.prefillSinks ?? {} } : {}),
    };
  },
};
