/**
 * ACT head search (spec §2.4): calibrate one query head at a time on a calibration set, keep the
 * heads that alone beat the uncalibrated baseline by more than a margin, then score the union.
 * The official rule from its log to head lists was never released; "alone beats baseline" is the
 * paper's reading. Heads interact, so the union can be worse than its members: when it does not
 * beat the baseline, a greedy forward pass (heads in order of their solo gain, each kept only if
 * the set improves) picks the set to ship instead, and the result says which rule won.
 */
import { act } from '../../calibrators/act.js';
import type { ModelFacts } from '../../calibrators/calibrator.js';
import type { HeadSet } from '../../models/profiles/profile.js';
import type { EngineClient } from '../engine/engine-client.js';
import { improvement, itemScores, mean, metricOf, type MetricInfo } from './metrics.js';
import { taskSpans, type PreparedTask } from './prepare.js';
import { scoreSpans, type ResolvedCalibration, type ScoreOptions } from './scorer.js';

export interface HeadSearchOptions {
  /** Layers whose heads are tried, each with ACT compiled into the engine. */
  layers: readonly number[];
  beta: number;
  threshold: number;
  /**
   * A head is kept when its gain exceeds this: in items (correct answers) for accuracy, in nats per
   * token for NLL. Items, because accuracy moves in steps of 1/n and "more than 0 items" is the
   * natural "at least one more right".
   */
  margin: number;
  score?: ScoreOptions;
}

export interface HeadEffect {
  layer: number;
  head: number;
  metric: number;
  /** metric − baseline, signed as the metric is (negative NLL deltas are improvements). */
  delta: number;
  kept: boolean;
}

export interface SetResult {
  heads: HeadSet;
  metric: number;
  delta: number;
}

export interface HeadSearchResult {
  metric: MetricInfo;
  items: number;
  baseline: number;
  effects: HeadEffect[];
  /** Every kept head together. */
  union: SetResult;
  /** Only when the union did not beat the baseline. */
  greedy: SetResult | null;
  /** The set to ship. */
  chosen: SetResult & { rule: 'union' | 'greedy' | 'none' };
  /** Full passes over the calibration set, for timing reports. */
  passes: number;
}

export async function searchHeads(client: EngineClient, facts: ModelFacts, task: PreparedTask, opts: HeadSearchOptions): Promise<HeadSearchResult> {
  const metric = metricOf(task);
  const spans = taskSpans(task);
  const nHeads = facts.config.nHeads;
  const configFor = (heads: HeadSet): ResolvedCalibration =>
    Object.keys(heads).length ? { act: act.resolve({ beta: opts.beta, threshold: opts.threshold, heads }, facts) } : {};
  let passes = 0;
  const scoreSets = async (sets: HeadSet[]): Promise<number[]> => {
    passes += sets.length;
    const sums = await scoreSpans(client, spans, sets.map(configFor), opts.score);
    return sums.map((s) => mean(itemScores(task, s).values));
  };

  const candidates = opts.layers.flatMap((layer) => Array.from({ length: nHeads }, (_, head) => ({ layer, head })));
  const [baseline, ...solo] = await scoreSets([{}, ...candidates.map(({ layer, head }) => ({ [layer]: [head] }))]);
  const marginInMetric = metric.name === 'accuracy' ? opts.margin / task.items.length : opts.margin;
  const effects: HeadEffect[] = candidates.map(({ layer, head }, i) => {
    const m = solo[i]!;
    return { layer, head, metric: m, delta: m - baseline!, kept: improvement(metric, baseline!, m) > marginInMetric + 1e-12 };
  });
  const kept = effects.filter((e) => e.kept);

  const setOf = (list: readonly HeadEffect[]): HeadSet => {
    const out: HeadSet = {};
    for (const e of list) (out[String(e.layer)] ??= []).push(e.head);
    for (const heads of Object.values(out)) heads.sort((a, b) => a - b);
    return out;
  };
  const result = (heads: HeadSet, m: number): SetResult => ({ heads, metric: m, delta: m - baseline! });

  const unionHeads = setOf(kept);
  const union = kept.length ? result(unionHeads, (await scoreSets([unionHeads]))[0]!) : result({}, baseline!);
  let greedy: SetResult | null = null;
  if (kept.length > 1 && improvement(metric, baseline!, union.metric) <= 0) {
    const order = [...kept].sort((a, b) => improvement(metric, a.metric, b.metric) || a.layer - b.layer || a.head - b.head);
    let chosen = [order[0]!];
    let best = order[0]!.metric;
    for (const e of order.slice(1)) {
      const trial = [...chosen, e];
      const [m] = await scoreSets([setOf(trial)]);
      if (improvement(metric, best, m!) > 0) {
        chosen = trial;
        best = m!;
      }
    }
    greedy = result(setOf(chosen), best);
  }
  const chosen = !kept.length
    ? { ...union, rule: 'none' as const }
    : greedy
      ? { ...greedy, rule: 'greedy' as const }
      : { ...union, rule: 'union' as const };
  return { metric, items: task.items.length, baseline: baseline!, effects, union, greedy, chosen, passes };
}
