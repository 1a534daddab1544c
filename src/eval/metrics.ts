/**
 * Span logprob sums → one value per item, and the task's metric: accuracy for multiple choice (an
 * item is 1 when the answer has the highest summed logprob), mean NLL per token for plain text.
 * Per-item values are kept, not just the mean, because the paired bootstrap resamples items.
 */
import type { PreparedTask } from './prepare.js';

export interface MetricInfo {
  name: 'accuracy' | 'nll';
  higherIsBetter: boolean;
}

export function metricOf(task: PreparedTask): MetricInfo {
  return task.kind === 'mc' ? { name: 'accuracy', higherIsBetter: true } : { name: 'nll', higherIsBetter: false };
}

export interface ItemScores {
  /** One value per item: 1/0 correct, or mean NLL per scored token. */
  values: Float64Array;
  /** MC only: the chosen index per item (the first of tied maxima). */
  predictions: Int32Array | null;
}

/** `sums` is one calibration's output of `scoreSpans(taskSpans(task))`. */
export function itemScores(task: PreparedTask, sums: Float64Array): ItemScores {
  if (task.kind === 'nll') {
    return { values: Float64Array.from(task.items, (span, i) => -sums[i]! / (span.ids.length - span.start)), predictions: null };
  }
  const values = new Float64Array(task.items.length);
  const predictions = new Int32Array(task.items.length);
  let at = 0;
  task.items.forEach((item, i) => {
    let best = 0;
    for (let c = 1; c < item.choices.length; c++) if (sums[at + c]! > sums[at + best]!) best = c;
    predictions[i] = best;
    values[i] = best === item.answer ? 1 : 0;
    at += item.choices.length;
  });
  return { values, predictions };
}

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return values.length ? s / values.length : NaN;
}

/** Positive when `after` is better than `before`, whichever way the metric points. */
export function improvement(metric: MetricInfo, before: number, after: number): number {
  return metric.higherIsBetter ? after - before : before - after;
}
