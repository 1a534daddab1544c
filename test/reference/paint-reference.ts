/**
 * PAINT in float64, written straight from shared/specs/paint.md (§3, §10) and independent of the
 * calibrator's own code, for the parity tests:
 * - selection from the float64 vision tower's attention maps (§3.1, with the spatial fix of §10.1);
 * - the edit as a ReferenceDecoder hook at `attn.hook_attn_scores` (§3.2): the last query row of
 *   each step, layers of the config, a + g·w·|a| on the selected keys;
 * - the guided choice (§3.3) from conditional and unconditional logits.
 */
import type { HookFn } from './reference-forward.js';

export interface RefSelection {
  local: number[];
  summary: number[];
  spatial: number[];
}

/** numpy's percentile, `linear` method, as the textbook formula: x[lo] + (x[hi] − x[lo])·frac. */
function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = ((s.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/** Indices of the k largest values, lowest index first among equals, returned ascending. */
function topk(values: readonly number[], k: number): number[] {
  return values
    .map((v, i) => [v, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, Math.max(0, k))
    .map(([, i]) => i)
    .sort((a, b) => a - b);
}

/** Σ_heads A[h][0][1..S−1]: the CLS row over the patches. */
export function clsScores(attn: readonly (readonly Float64Array[])[]): number[] {
  const S = attn[0]!.length;
  return Array.from({ length: S - 1 }, (_, j) => attn.reduce((s, head) => s + head[0]![j + 1]!, 0));
}

/** Column sums over every query row of the head-mean attention, patch columns only (the spatial fix). */
export function patchColumnSums(attn: readonly (readonly Float64Array[])[]): number[] {
  const S = attn[0]!.length;
  return Array.from({ length: S - 1 }, (_, j) => attn.reduce((s, head) => s + head.reduce((c, row) => c + row[j + 1]!, 0), 0) / attn.length);
}

/** The released code's spatial scores (row sums of the head-mean map over all 577 positions), for pitfall 1. */
export function releasedSpatialScores(attn: readonly (readonly Float64Array[])[]): number[] {
  const S = attn[0]!.length;
  return Array.from({ length: S }, (_, i) => attn.reduce((s, head) => s + head[i]!.reduce((a, b) => a + b, 0), 0) / attn.length);
}

/** The outlier bound q3 + 1.5·(q3 − q1), with numpy-linear quartiles. */
export function iqrBound(scores: readonly number[]): number {
  const q1 = percentile(scores, 25);
  const q3 = percentile(scores, 75);
  return q3 + 1.5 * (q3 - q1);
}

export function iqrOutliers(scores: readonly number[]): number[] {
  const bound = iqrBound(scores);
  return scores.flatMap((v, i) => (v > bound ? [i] : []));
}

/**
 * How far the selection is from flipping: the smallest gap between the k-th and (k+1)-th local and
 * spatial scores, and between any summary score and the IQR bound. Float32 taps and this float64
 * reference can only disagree on a set when a margin is within their rounding (~1e-7 here).
 */
export function selectionMargin(attentions: readonly (readonly (readonly Float64Array[])[])[], featureBlock: number, localRatio: number, spatialRatio: number): number {
  const gapAt = (scores: number[], k: number) => {
    const s = [...scores].sort((a, b) => b - a);
    return k <= 0 || k >= s.length ? Infinity : s[k - 1]! - s[k]!;
  };
  const local = clsScores(attentions[0]!);
  const P = local.length;
  const summary = clsScores(attentions[featureBlock]!);
  const bound = iqrBound(summary);
  return Math.min(
    gapAt(local, Math.trunc(P * localRatio)),
    gapAt(patchColumnSums(attentions[0]!), Math.trunc(P * spatialRatio)),
    ...summary.map((v) => Math.abs(v - bound)),
  );
}

/** §3.1 for one image, from its vision attention maps (`attentions[block][head][query][key]`). */
export function referenceSelection(attentions: readonly (readonly (readonly Float64Array[])[])[], featureBlock: number, localRatio: number, spatialRatio: number): RefSelection {
  const first = attentions[0]!;
  const local = clsScores(first);
  const P = local.length;
  const summary = iqrOutliers(clsScores(attentions[featureBlock]!));
  const spatial = topk(patchColumnSums(first), Math.trunc(P * spatialRatio));
  const merged = new Set([...topk(local, Math.trunc(P * localRatio)), ...spatial]);
  for (const s of summary) merged.delete(s);
  return { local: [...merged].sort((a, b) => a - b), summary, spatial };
}

export interface PaintRefConfig {
  alpha: number;
  beta: number;
  layers: readonly number[];
  editPrefill: boolean;
  /** headWeight(layer, head): 1 unless the extension is on. */
  headWeight?: (layer: number, head: number) => number;
}

/** One score row edited as §3.2: a + g·|a| at each (key, g). */
export function editRow(row: Float64Array | number[], gains: ReadonlyMap<number, number>, weight = 1): void {
  for (const [k, g] of gains) row[k] = row[k]! + g * weight * Math.abs(row[k]!);
}

/**
 * The edit as a ReferenceDecoder hook. Gains by sequence position: α for local keys, β for summary
 * keys (a key in both already belongs to summary only). The edited row is the last row of each
 * forward call, when it is a decode position (≥ the prompt length) or, with editPrefill, the last
 * prompt position: a decode step's query is the row attune edits, and a prompt prefilled in one
 * call ends at the last prompt position.
 */
export function paintHook(cfg: PaintRefConfig, spans: readonly { start: number }[], selections: readonly RefSelection[], promptLength: number): HookFn {
  const gains = new Map<number, number>();
  spans.forEach((span, i) => {
    const sel = selections[i]!;
    if (cfg.alpha > 0) for (const p of sel.local) gains.set(span.start + p, cfg.alpha);
    if (cfg.beta > 0) for (const p of sel.summary) gains.set(span.start + p, cfg.beta);
  });
  const layers = new Set(cfg.layers);
  return (rows, ctx) => {
    if (ctx.point !== 'attn.hook_attn_scores' || !layers.has(ctx.layer)) return;
    const last = ctx.queryPositions.length - 1;
    const pos = ctx.queryPositions[last]!;
    if (!(pos >= promptLength || (cfg.editPrefill && pos === promptLength - 1))) return;
    editRow(rows[last]!, gains, cfg.headWeight?.(ctx.layer, ctx.head!) ?? 1);
  };
}

function logSoftmax(x: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]!);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(x, (v) => v - lse);
}

/** §3.3: γ(lp_c − lp_u) + lp_u, −∞ where lp_c < log(cutoff) + max lp_c. */
export function guidedScores(cond: ArrayLike<number>, uncond: ArrayLike<number>, gamma: number, cutoff: number): Float64Array {
  const lc = logSoftmax(cond);
  const lu = logSoftmax(uncond);
  const cut = Math.log(cutoff) + Math.max(...lc);
  return lc.map((v, i) => (v < cut ? -Infinity : gamma * (v - lu[i]!) + lu[i]!));
}
