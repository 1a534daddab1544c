/**
 * VHR in float64, written from shared/specs/vhr.md §3 and §10 (Option A), for parity tests:
 * - `selectHeads`: one layer's selection (§3.3): VHD outliers zeroed when VHD and TA both exceed
 *   their mean + unbiased std (with the std > 1 guard), then the heads above the lower median;
 * - `textOnlyOutputs`: O_T, every layer's head outputs at the last row of a plain prefill of the
 *   text-only prompt;
 * - `selectLayerByLayer`: Algorithm 1's t = 0 selection. Layer l's VHD must see the outputs of the
 *   earlier target layers already reinforced, so each target layer is selected from its own forward
 *   pass with the layers before it reinforced (one pass per target layer: slow and obviously right).
 *   `selectUnreinforced` is the two-pass variant the paper rejects: every layer selected from one
 *   unreinforced pass. Tests show the engine matches the first and not the second.
 * - `reinforceHooks`: the selected heads × α at every position of every step (prefill and decode).
 */
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { ReferenceDecoder, hookName, type HookFn, type HookName } from './reference-forward.js';

export interface VhrRefConfig {
  alpha: number;
  layers: readonly number[];
  distance: 'sq_l2' | 'l2';
  outlierFilter: boolean;
  outlierGuard: boolean;
}

/** Runs the with-image prompt through a fresh float64 decoder carrying these hooks. */
export type PromptRunner = (hooks: [HookName, HookFn][]) => void;

/** [layer][head] → the head's output vector (hd) at the last prompt row. */
export type HeadOutputs = Float64Array[][];

function meanStd(xs: readonly number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1); // torch.std: unbiased
  return { mean, std: Math.sqrt(variance) };
}

export function headDistance(withImage: ArrayLike<number>, textOnly: ArrayLike<number>, distance: VhrRefConfig['distance']): number {
  let sq = 0;
  for (let d = 0; d < withImage.length; d++) sq += (withImage[d]! - textOnly[d]!) ** 2;
  return distance === 'sq_l2' ? sq : Math.sqrt(sq);
}

export const squaredNorm = (x: ArrayLike<number>): number => Array.from(x).reduce((a, v) => a + v * v, 0);

export interface LayerSelection {
  /** Selected heads, ascending. */
  heads: number[];
  /** Heads the outlier filter zeroed. */
  outliers: number[];
  /** The VHD after zeroing, and the lower median it was compared with. */
  filtered: number[];
  median: number;
}

/** One layer's selection (spec §3.3, §10.1). */
export function selectHeads(vhd: readonly number[], ta: readonly number[], opts: { outlierFilter: boolean; outlierGuard: boolean }): LayerSelection {
  const v = meanStd(vhd);
  const t = meanStd(ta);
  const filterRuns = opts.outlierFilter && (!opts.outlierGuard || v.std > 1);
  const outliers = filterRuns ? vhd.flatMap((x, h) => (x > v.mean + v.std && ta[h]! > t.mean + t.std ? [h] : [])) : [];
  const filtered = vhd.map((x, h) => (outliers.includes(h) ? 0 : x));
  const median = [...filtered].sort((a, b) => a - b)[Math.floor((filtered.length - 1) / 2)]!;
  return { heads: filtered.flatMap((x, h) => (x > median ? [h] : [])), outliers, filtered, median };
}

/** Records every layer's head outputs at the last row of the step the hooks see. */
function captureHooks(layers: readonly number[], into: HeadOutputs): [HookName, HookFn][] {
  return layers.map((l) => [hookName(l, 'attn.hook_z'), (rows, ctx) => void ((into[l] ??= [])[ctx.head!] = Float64Array.from(rows.at(-1)!))]);
}

/** O_T: a plain prefill of the text-only prompt, every layer's head outputs at its last row. */
export function textOnlyOutputs(weights: DecoderWeights, textIds: readonly number[]): HeadOutputs {
  const out: HeadOutputs = [];
  const decoder = new ReferenceDecoder(weights);
  for (const [name, fn] of captureHooks(Array.from({ length: weights.config.nLayers }, (_, l) => l), out)) decoder.addHook(name, fn);
  decoder.step({ tokens: textIds });
  return out;
}

/** The selected heads × α, at every row the hook sees. */
export function reinforceHooks(heads: Readonly<Record<number, readonly number[]>>, alpha: number): [HookName, HookFn][] {
  return Object.entries(heads).map(([l, hs]) => [
    hookName(Number(l), 'attn.hook_z'),
    (rows, ctx) => (hs.includes(ctx.head!) ? rows.map((r) => r.map((x) => alpha * x)) : undefined),
  ]);
}

export interface VhrSelection {
  /** Per target layer. */
  heads: Record<number, number[]>;
  vhd: Record<number, number[]>;
  layers: Record<number, LayerSelection>;
}

function selectLayer(withImage: Float64Array[], textOnly: Float64Array[], cfg: VhrRefConfig): { vhd: number[]; selection: LayerSelection } {
  const vhd = withImage.map((o, h) => headDistance(o, textOnly[h]!, cfg.distance));
  return { vhd, selection: selectHeads(vhd, textOnly.map(squaredNorm), cfg) };
}

/** Algorithm 1 at t = 0: each target layer selected with the earlier target layers reinforced. */
export function selectLayerByLayer(run: PromptRunner, text: HeadOutputs, cfg: VhrRefConfig): VhrSelection {
  const result: VhrSelection = { heads: {}, vhd: {}, layers: {} };
  for (const l of [...cfg.layers].sort((a, b) => a - b)) {
    const seen: HeadOutputs = [];
    run([...reinforceHooks(result.heads, cfg.alpha), ...captureHooks([l], seen)]);
    const { vhd, selection } = selectLayer(seen[l]!, text[l]!, cfg);
    result.heads[l] = selection.heads;
    result.vhd[l] = vhd;
    result.layers[l] = selection;
  }
  return result;
}

/** The rejected two-pass variant: every target layer selected from one unreinforced pass. */
export function selectUnreinforced(run: PromptRunner, text: HeadOutputs, cfg: VhrRefConfig): VhrSelection {
  const seen: HeadOutputs = [];
  run(captureHooks(cfg.layers, seen));
  const result: VhrSelection = { heads: {}, vhd: {}, layers: {} };
  for (const l of cfg.layers) {
    const { vhd, selection } = selectLayer(seen[l]!, text[l]!, cfg);
    result.heads[l] = selection.heads;
    result.vhd[l] = vhd;
    result.layers[l] = selection;
  }
  return result;
}
