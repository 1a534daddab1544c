/** Plain-text tables for the eval and profile commands. */
import type { Comparison } from './compare.js';
import type { HeadSearchResult } from './head-search.js';
import type { MetricInfo } from './metrics.js';

export function formatValue(metric: MetricInfo, v: number): string {
  return metric.name === 'accuracy' ? `${(100 * v).toFixed(2)}%` : v.toFixed(4);
}

export function formatDelta(metric: MetricInfo, d: number): string {
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  return metric.name === 'accuracy' ? `${sign}${(100 * Math.abs(d)).toFixed(2)} pts` : `${sign}${Math.abs(d).toFixed(4)}`;
}

/** Right-pads every column to its widest cell. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

export function formatComparison(c: Comparison): string {
  const m = c.metric;
  const count = (v: number) => (m.name === 'accuracy' ? ` (${Math.round(v * c.items)}/${c.items})` : '');
  const interval = (i: { low: number; high: number }, f: (v: number) => string) => `[${f(i.low)}, ${f(i.high)}]`;
  const value = (v: number) => formatValue(m, v);
  const delta = (v: number) => formatDelta(m, v);
  const d = c.difference;
  const better = m.higherIsBetter ? 'higher' : 'lower';
  return [
    table([
      ['items', 'metric', 'without', 'with', 'difference'],
      [String(c.items), m.name, value(c.before.mean) + count(c.before.mean), value(c.after.mean) + count(c.after.mean), delta(d.diff)],
      ['', `${Math.round(d.confidence * 100)}% CI`, interval(c.before, value), interval(c.after, value), interval(d, delta)],
    ]),
    `(${better} is better; CIs by bootstrap over items, ${d.resamples} resamples, seed ${d.seed}; the difference's is paired)`,
  ].join('\n');
}

export function formatSearch(r: HeadSearchResult): string {
  const m = r.metric;
  const rows = [['layer', 'head', m.name, 'delta', 'kept']];
  for (const e of r.effects) rows.push([String(e.layer), String(e.head), formatValue(m, e.metric), formatDelta(m, e.delta), e.kept ? 'yes' : '']);
  const heads = (h: Record<string, number[]>) => JSON.stringify(h);
  const lines = [
    table(rows),
    '',
    `baseline (no calibration): ${formatValue(m, r.baseline)} on ${r.items} items`,
    `heads kept alone: ${r.effects.filter((e) => e.kept).length} of ${r.effects.length}`,
    `union of kept heads: ${formatValue(m, r.union.metric)} (${formatDelta(m, r.union.delta)}) ${heads(r.union.heads)}`,
  ];
  if (r.greedy) lines.push(`greedy forward selection: ${formatValue(m, r.greedy.metric)} (${formatDelta(m, r.greedy.delta)}) ${heads(r.greedy.heads)}`);
  const verdict =
    r.chosen.rule === 'none'
      ? 'no head beat the baseline alone: the profile gets an empty head set'
      : r.chosen.rule === 'greedy'
        ? 'the union did not beat the baseline, so the greedy set is written'
        : 'the union beats the baseline and is written';
  lines.push(`chosen: ${r.chosen.rule}; ${verdict}`);
  return lines.join('\n');
}
