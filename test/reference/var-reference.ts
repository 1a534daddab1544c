/**
 * VAR in float64, written straight from shared/specs/var.md (§3 the official code, §9 what attune
 * implements), for the spec vectors and as a ReferenceDecoder hook for parity tests:
 * - `phi`: the sink value of one layer-input row (no norm gain, eps 1e-6);
 * - `varRow`: the image-centric selection and the redistribution of one attention row;
 * - `VarReference`: both as decoder hooks, sinks detected on prompt tokens and frozen, per layer.
 */
import type { HookFn } from './reference-forward.js';
import { SMALLEST_NORMAL_F32 } from '../../calibrators/act.js';

/** The official code's ε inside the RMS and, per visual key, inside the sink-ratio denominator. */
export const VAR_EPS = 1e-6;

/** φ(x) = max over the sink dims of |x[d] / RMS(x)|, RMS(x) = sqrt(mean x² + 1e-6). */
export function phi(x: ArrayLike<number>, sinkDims: readonly number[]): number {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + VAR_EPS);
  let best = 0;
  for (const d of sinkDims) best = Math.max(best, Math.abs(x[d]! * inv));
  return best;
}

export interface VarKnobs {
  /** Paper p: the fraction of sink attention recycled onto visual non-sinks. */
  recycle: number;
  /** Paper ρ: a row needs a visual non-sink ratio of at least this. */
  minNonsinkRatio: number;
  /** The pre-filter on the row's attention to the image. */
  minImageAttention: number;
}

export interface RowDecision {
  selected: boolean;
  /** Σ over visual keys. */
  imageMass: number;
  /** Σ over visual sinks / Σ over visual keys (+1e-6 each): the official `portion`. */
  sinkRatio: number;
}

/**
 * One attention row (keys by position). `visual` are the image keys, `sinks` every sink of the
 * layer (text and visual). Returns the decision; edits `row` in place when selected.
 */
export function varRow(row: Float64Array | number[], visual: ReadonlySet<number>, sinks: ReadonlySet<number>, k: VarKnobs): RowDecision {
  let imageMass = 0, visualSinkMass = 0, sinkMass = 0, nonSinkMass = 0, visualSinks = 0;
  for (let j = 0; j < row.length; j++) {
    const a = row[j]!;
    if (sinks.has(j)) sinkMass += a;
    if (!visual.has(j)) continue;
    imageMass += a;
    if (sinks.has(j)) {
      visualSinkMass += a;
      visualSinks++;
    } else nonSinkMass += a;
  }
  const sinkRatio = visualSinkMass / (imageMass + visual.size * VAR_EPS);
  // A layer without visual sinks is skipped (official logic.py:140-141); so is a row whose visual
  // non-sink mass is too small to scale (attune's guard, as ACT's).
  const selected = visualSinks > 0 && sinkRatio <= 1 - k.minNonsinkRatio && imageMass >= k.minImageAttention && nonSinkMass > SMALLEST_NORMAL_F32;
  if (selected) {
    const budget = k.recycle * sinkMass;
    for (let j = 0; j < row.length; j++) {
      if (sinks.has(j)) row[j] = (1 - k.recycle) * row[j]!;
      else if (visual.has(j)) row[j] = row[j]! * (1 + budget / nonSinkMass);
    }
  }
  return { selected, imageMass, sinkRatio };
}

export interface VarRefConfig extends VarKnobs {
  tau: number;
  sinkDims: readonly number[];
  /** Layers VAR runs on. */
  layers: readonly number[];
}

/**
 * VAR as ReferenceDecoder hooks for one sequence: `spans` are its image placeholder spans, and
 * positions below `promptLength` are prompt tokens (detected; the prompt may come in chunks).
 * Query rows at or after the end of the last image are edited.
 */
export class VarReference {
  readonly visual: Set<number>;
  readonly queryStart: number;
  /** Layer → sink positions (ascending), filled as prompt tokens pass. */
  readonly sinks = new Map<number, number[]>();
  /** Layer → prompt position → φ, for boundary checks. */
  readonly phis = new Map<number, Map<number, number>>();
  /** Layer → (head, query row) pairs edited at prefill. */
  readonly editedPrefill = new Map<number, number>();
  editedDecode = 0;
  /** Every selection decision, for boundary checks. */
  readonly decisions: (RowDecision & { layer: number; head: number; position: number })[] = [];
  private readonly layers: Set<number>;

  constructor(readonly cfg: VarRefConfig, spans: readonly { start: number; length: number }[], readonly promptLength: number) {
    this.visual = new Set(spans.flatMap((s) => Array.from({ length: s.length }, (_, i) => s.start + i)));
    this.queryStart = Math.max(0, ...spans.map((s) => s.start + s.length));
    this.layers = new Set(cfg.layers);
    for (const l of cfg.layers) {
      this.sinks.set(l, []);
      this.phis.set(l, new Map());
      this.editedPrefill.set(l, 0);
    }
  }

  readonly hook: HookFn = (rows, ctx) => {
    if (!this.layers.has(ctx.layer)) return;
    if (ctx.point === 'hook_resid_pre') {
      rows.forEach((x, i) => {
        const pos = ctx.queryPositions[i]!;
        if (pos >= this.promptLength) return; // generated tokens are never sinks
        const v = phi(x, this.cfg.sinkDims);
        this.phis.get(ctx.layer)!.set(pos, v);
        if (v > this.cfg.tau) this.sinks.get(ctx.layer)!.push(pos);
      });
      return;
    }
    if (ctx.point !== 'attn.hook_pattern') return;
    const sinks = new Set(this.sinks.get(ctx.layer)!);
    rows.forEach((row, i) => {
      const pos = ctx.queryPositions[i]!;
      if (pos < this.queryStart) return;
      const d = varRow(row, this.visual, sinks, this.cfg);
      this.decisions.push({ ...d, layer: ctx.layer, head: ctx.head!, position: pos });
      if (!d.selected) return;
      if (pos < this.promptLength) this.editedPrefill.set(ctx.layer, this.editedPrefill.get(ctx.layer)! + 1);
      else this.editedDecode++;
    });
  };

  /** Visual sinks of a layer. */
  visualSinks(layer: number): number[] {
    return this.sinks.get(layer)!.filter((p) => this.visual.has(p));
  }
}
