/**
 * PAINT's token selection (shared/specs/paint.md §3.1, §10.1), per image, from the vision tower's
 * CLS attention as the selection taps deliver it (float32, one value per patch):
 *   local   = top ⌊P·local_ratio⌋ patches by layer-0 CLS→patch attention summed over heads;
 *   summary = IQR outliers of the feature block's CLS→patch attention (numpy's linear percentiles):
 *             n_sum = #{score > q3 + 1.5·(q3 − q1)}, then the top int(P·(n_sum/P)) by score, as the
 *             released code writes it (equal to the outliers for LLaVA-1.5's 576 patches);
 *   spatial = top ⌊P·spatial_ratio⌋ patches by the column sums of the head-mean layer-0 attention
 *             over patch columns. This is the spec's labelled fix: the released code sums rows of a
 *             row-stochastic matrix (every sum is 1, pitfall 1);
 *   the α set is (local ∪ spatial) \ summary: a patch in both gets β only (pitfall 11).
 * `int(x)` in the released Python is truncation, so every count is Math.trunc of the same float64
 * product. Ties in a top-k go to the lower patch index (torch.topk leaves their order unspecified).
 */

export interface SelectionScores {
  /** Σ_heads of the CLS row at block 0, over the patches. */
  local: ArrayLike<number>;
  /** Σ_heads of the CLS row at the feature block, over the patches. */
  summary: ArrayLike<number>;
  /** Column sums of the head-mean block-0 attention over all query rows, patch columns only. */
  spatial: ArrayLike<number>;
}

export interface SelectionRatios {
  localRatio: number;
  spatialRatio: number;
}

/** One image's selected patches (0-based, raster order), each list ascending. */
export interface ImageSelection {
  /** Patches that get α: the local top-k plus the spatial picks, minus the summary set. */
  local: number[];
  /** Patches that get β. */
  summary: number[];
  /** The spatial picks before merging (empty when spatial_ratio is 0). */
  spatial: number[];
}

/**
 * numpy.percentile(values, p) with the default `linear` method, as numpy computes it: the virtual
 * index (n − 1)·p/100, then its `_lerp`, which for a fraction t ≥ 0.5 interpolates from the upper
 * neighbour (b − (b − a)·(1 − t)) so the result is exact at both ends. In float64.
 */
export function percentileLinear(values: ArrayLike<number>, p: number): number {
  const n = values.length;
  if (n === 0) throw new RangeError('percentile of an empty list');
  const sorted = Float64Array.from(values).sort();
  const virtual = (n - 1) * (p / 100);
  const lo = Math.floor(virtual);
  const hi = Math.min(lo + 1, n - 1);
  const t = virtual - lo;
  const a = sorted[lo]!, b = sorted[hi]!;
  const diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

/** How many scores lie above q3 + 1.5·IQR (the released `get_top_ratio`, times P). */
export function iqrOutlierCount(scores: ArrayLike<number>): number {
  const q1 = percentileLinear(scores, 25);
  const q3 = percentileLinear(scores, 75);
  const bound = q3 + 1.5 * (q3 - q1);
  let n = 0;
  for (let i = 0; i < scores.length; i++) if (scores[i]! > bound) n++;
  return n;
}

/** Indices of the k largest scores; ties go to the lower index. Ascending. */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  if (k <= 0) return [];
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((i, j) => scores[j]! - scores[i]! || i - j);
  return order.slice(0, k).sort((a, b) => a - b);
}

export function selectImageTokens(scores: SelectionScores, ratios: SelectionRatios): ImageSelection {
  const P = scores.local.length;
  if (scores.summary.length !== P || scores.spatial.length !== P) throw new RangeError('selection scores of different lengths');
  const nSum = iqrOutlierCount(scores.summary);
  const summary = topK(scores.summary, Math.trunc(P * (nSum / P)));
  const spatial = topK(scores.spatial, Math.trunc(P * ratios.spatialRatio));
  const inSummary = new Set(summary);
  const merged = new Set([...topK(scores.local, Math.trunc(P * ratios.localRatio)), ...spatial]);
  const local = [...merged].filter((p) => !inSummary.has(p)).sort((a, b) => a - b);
  return { local, summary, spatial };
}
