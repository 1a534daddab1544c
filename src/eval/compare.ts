/** One task scored without and with a calibration, in one batched pass, plus the paired CI. */
import type { EngineClient } from '../engine/engine-client.js';
import { bootstrapMean, pairedBootstrap, type BootstrapOptions, type MeanInterval, type PairedDifference } from './bootstrap.js';
import { itemScores, metricOf, type ItemScores, type MetricInfo } from './metrics.js';
import { taskSpans, type PreparedTask } from './prepare.js';
import { scoreSpans, type ResolvedCalibration, type ScoreOptions } from './scorer.js';

export interface Comparison {
  metric: MetricInfo;
  items: number;
  /** Each arm's metric with its own (unpaired) bootstrap interval, for reporting levels. */
  before: MeanInterval;
  after: MeanInterval;
  /** after − before, with its paired bootstrap interval. */
  difference: PairedDifference;
  perItem: { before: ItemScores; after: ItemScores };
}

export async function compareCalibration(
  client: EngineClient,
  task: PreparedTask,
  calibration: ResolvedCalibration,
  opts: { bootstrap?: BootstrapOptions; score?: ScoreOptions } = {},
): Promise<Comparison> {
  const [plainSums, calibratedSums] = await scoreSpans(client, taskSpans(task), [{}, calibration], opts.score);
  const before = itemScores(task, plainSums!);
  const after = itemScores(task, calibratedSums!);
  return {
    metric: metricOf(task),
    items: task.items.length,
    before: bootstrapMean(before.values, opts.bootstrap),
    after: bootstrapMean(after.values, opts.bootstrap),
    difference: pairedBootstrap(before.values, after.values, opts.bootstrap),
    perItem: { before, after },
  };
}
