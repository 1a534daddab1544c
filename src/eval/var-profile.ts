/**
 * Finding VAR's model profile (sink dims and τ) from a few image prompts, as shared/specs/var.md
 * §3.1 does it by hand: look at the RMS-normalised hidden state |x/RMS(x)| at a middle layer and
 * list the dimensions where it is far above the rest on visual tokens; then pick τ in the gap that
 * separates the sink tokens' φ from everyone else's over the layers VAR can edit.
 *
 * - Sink dims: dimensions ranked by their largest value on visual tokens at the probe layer; the
 *   dims before the largest drop (a ratio of at least MIN_DIM_GAP between consecutive ranks, within
 *   the first MAX_SINK_DIMS) are the candidates. Massive activations are one to three dims whose
 *   values are several times every other dim's, so the drop is sharp where they exist.
 * - τ: φ (the max over the candidate dims) of every prompt token at layers 2..L−1; the largest
 *   ratio between consecutive sorted values above the median is the gap between sinks and the
 *   rest, and τ is the roundest number in the middle half of that gap (20 for a gap of 10 to 25,
 *   as the paper's LLaMA-2 setting).
 */
import type { HiddenProbe, ProbePrompt } from './hidden-probe.js';

export const MAX_SINK_DIMS = 4;
export const MIN_DIM_GAP = 1.5;
/** A gap in φ smaller than this ratio is no separation between sinks and the rest. */
export const MIN_TAU_GAP = 1.3;

export interface DimRow {
  dim: number;
  visualMax: number;
  visualP95: number;
  visualMedian: number;
  /** Non-visual tokens after the first one. */
  textMax: number;
  /** The first token (BOS): where LLaMA's own massive activations sit. */
  firstToken: number;
  candidate: boolean;
}

export interface SinkCount {
  layer: number;
  /** Mean per prompt. */
  visual: number;
  text: number;
}

export interface Summary {
  max: number;
  median: number;
}

export interface VarProfileReport {
  probeLayer: number;
  prompts: number;
  visualTokens: number;
  textTokens: number;
  /** The top dims by their largest value on visual tokens at the probe layer. */
  dims: DimRow[];
  sinkDims: number[];
  /** How far the last candidate sits above the next dim (its max over the next one's). */
  dimGap: number | null;
  /** Layers φ was read at (2..L−1). */
  layers: number[];
  phiVisual: Summary;
  phiText: Summary;
  /** The suggested τ and the gap it sits in, or null when φ shows no separation. */
  tau: { value: number; below: number; above: number } | null;
  /** At `tau` (suggested or given): sinks per prompt and layer. */
  sinksAt: { tau: number; counts: SinkCount[] } | null;
}

export interface VarProfileOptions {
  probeLayer: number;
  /** Layers φ is read at. */
  layers: readonly number[];
  /** Use this τ instead of suggesting one. */
  tau?: number;
  /** Dims listed. */
  top?: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const ascending = (values: Iterable<number>) => Float64Array.from(values).sort();

/** The dims before the largest drop among the first ranks (see the module comment), or none. */
export function pickSinkDims(ranked: readonly { dim: number; value: number }[]): { dims: number[]; gap: number | null } {
  let best = -1, gap = 0;
  for (let i = 0; i < Math.min(MAX_SINK_DIMS, ranked.length - 1); i++) {
    const r = ranked[i]!.value / ranked[i + 1]!.value;
    if (r > gap) [best, gap] = [i, r];
  }
  if (best < 0 || gap < MIN_DIM_GAP) return { dims: [], gap: null };
  return { dims: ranked.slice(0, best + 1).map((r) => r.dim).sort((a, b) => a - b), gap };
}

/** The roundest number in the middle half of (below, above). */
export function roundestBetween(below: number, above: number): number {
  const lo = below + (above - below) / 4, hi = above - (above - below) / 4, mid = (below + above) / 2;
  for (let digits = 1; digits <= 6; digits++) {
    const step = 10 ** (Math.floor(Math.log10(mid)) - digits + 1);
    const v = Number((Math.round(mid / step) * step).toPrecision(digits));
    if (v >= lo && v <= hi) return v;
  }
  return mid;
}

/** τ in the largest ratio gap of φ above its median (see the module comment), or null. */
export function suggestTau(phis: readonly number[]): { value: number; below: number; above: number } | null {
  const sorted = ascending(phis);
  const median = quantile(Array.from(sorted), 0.5);
  let best: { below: number; above: number } | null = null, ratio = 0;
  for (let i = 0; i + 1 < sorted.length; i++) {
    const a = sorted[i]!, b = sorted[i + 1]!;
    if (a < median || a <= 0) continue;
    if (b / a > ratio) [best, ratio] = [{ below: a, above: b }, b / a];
  }
  if (!best || ratio < MIN_TAU_GAP) return null;
  return { value: roundestBetween(best.below, best.above), ...best };
}

/** Two passes over the prompts: dims at the probe layer, then φ over the chosen dims at every layer. */
export async function profileVar(probe: HiddenProbe, prompts: readonly ProbePrompt[], opts: VarProfileOptions): Promise<VarProfileReport> {
  const D = probe.dim;
  const visualOf = (p: ProbePrompt) => new Set(p.spans.flatMap((s) => Array.from({ length: s.length }, (_, i) => s.start + i)));

  // Pass 1: every dim's largest value on visual tokens, text tokens and the first token.
  const visualMax = new Float64Array(D), textMax = new Float64Array(D), firstMax = new Float64Array(D);
  const kept: Float32Array[] = [];
  let visualTokens = 0, textTokens = 0;
  for (const p of prompts) {
    const z = (await probe.read(p)).get(opts.probeLayer)!;
    kept.push(z);
    const visual = visualOf(p);
    visualTokens += visual.size;
    textTokens += p.ids.length - visual.size;
    for (let t = 0; t < p.ids.length; t++) {
      const into = visual.has(t) ? visualMax : t === 0 ? firstMax : textMax;
      for (let d = 0; d < D; d++) into[d] = Math.max(into[d]!, z[t * D + d]!);
    }
  }
  const ranked = Array.from(visualMax, (value, dim) => ({ dim, value })).sort((a, b) => b.value - a.value);
  const { dims: sinkDims, gap } = pickSinkDims(ranked);
  const dims: DimRow[] = ranked.slice(0, opts.top ?? 8).map(({ dim, value }) => {
    const values = ascending(prompts.flatMap((p, k) => [...visualOf(p)].map((t) => kept[k]![t * D + dim]!)));
    return {
      dim, visualMax: value, visualP95: quantile(Array.from(values), 0.95), visualMedian: quantile(Array.from(values), 0.5),
      textMax: textMax[dim]!, firstToken: firstMax[dim]!, candidate: sinkDims.includes(dim),
    };
  });
  kept.length = 0;

  // Pass 2: φ over the sink dims for every token at every layer VAR can edit.
  const phis = new Map<number, { visual: number[]; text: number[] }[]>(opts.layers.map((l) => [l, []]));
  if (sinkDims.length) {
    for (const p of prompts) {
      const readout = await probe.read(p);
      const visual = visualOf(p);
      for (const l of opts.layers) {
        const z = readout.get(l)!;
        const entry = { visual: [] as number[], text: [] as number[] };
        for (let t = 0; t < p.ids.length; t++) {
          let phi = 0;
          for (const d of sinkDims) phi = Math.max(phi, z[t * D + d]!);
          (visual.has(t) ? entry.visual : entry.text).push(phi);
        }
        phis.get(l)!.push(entry);
      }
    }
  }
  const all = (kind: 'visual' | 'text') => [...phis.values()].flatMap((perPrompt) => perPrompt.flatMap((e) => e[kind]));
  const summary = (values: number[]): Summary => {
    const sorted = Array.from(ascending(values));
    return { max: sorted.at(-1) ?? NaN, median: quantile(sorted, 0.5) };
  };
  const tau = sinkDims.length ? suggestTau([...all('visual'), ...all('text')]) : null;
  const at = opts.tau ?? tau?.value;
  return {
    probeLayer: opts.probeLayer,
    prompts: prompts.length,
    visualTokens,
    textTokens,
    dims,
    sinkDims,
    dimGap: gap,
    layers: [...opts.layers],
    phiVisual: summary(all('visual')),
    phiText: summary(all('text')),
    tau,
    sinksAt: at === undefined || !sinkDims.length ? null : {
      tau: at,
      counts: opts.layers.map((layer) => {
        const perPrompt = phis.get(layer)!;
        const count = (kind: 'visual' | 'text') => perPrompt.reduce((n, e) => n + e[kind].filter((v) => v > at).length, 0) / prompts.length;
        return { layer, visual: count('visual'), text: count('text') };
      }),
    },
  };
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');

/** The report as the command prints it. */
export function formatVarProfile(r: VarProfileReport, table: (rows: string[][]) => string): string {
  const lines = [
    `|x/RMS(x)| at the input of layer ${r.probeLayer}, over ${r.prompts} image prompt(s) (${r.visualTokens} visual and ${r.textTokens} other tokens):`,
    table([
      ['dim', 'visual max', 'visual p95', 'visual median', 'text max', 'first token', 'sink dim'],
      ...r.dims.map((d) => [String(d.dim), f2(d.visualMax), f2(d.visualP95), f2(d.visualMedian), f2(d.textMax), f2(d.firstToken), d.candidate ? 'yes' : '']),
    ]),
    '',
  ];
  if (!r.sinkDims.length) {
    lines.push(`no dimension stands out on visual tokens (no drop of ${MIN_DIM_GAP}x or more among the top ${MAX_SINK_DIMS}): these images show no visual sinks at layer ${r.probeLayer}; try other images or --layer`);
    return lines.join('\n');
  }
  lines.push(`sink dims: [${r.sinkDims.join(', ')}] (${f2(r.dimGap!)}x the next dim's largest value on visual tokens)`);
  lines.push(`φ over them at layers ${r.layers.join(', ')}: visual tokens max ${f2(r.phiVisual.max)}, median ${f2(r.phiVisual.median)}; other tokens max ${f2(r.phiText.max)}, median ${f2(r.phiText.median)}`);
  lines.push(r.tau
    ? `suggested τ: ${r.tau.value} (the largest gap in φ above its median: ${f2(r.tau.below)} → ${f2(r.tau.above)})`
    : `no gap of ${MIN_TAU_GAP}x or more separates sinks from other tokens in φ; pass --tau`);
  if (r.sinksAt) {
    lines.push(`sinks per prompt at τ ${r.sinksAt.tau}: ${r.sinksAt.counts.map((c) => `layer ${c.layer}: ${f2(c.visual)} visual, ${f2(c.text)} other`).join('; ')}`);
  }
  return lines.join('\n');
}
