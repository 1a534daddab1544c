/**
 * Scores token spans through the real engine. Every (span × calibration) request is submitted at
 * once, up to an in-flight cap, so the engine's scheduler packs them into large prefill batches: a
 * span costs one prompt-only forward (`maxTokens: 0`), and the logprobs come from the engine's
 * prompt-logprob event rather than from sampling.
 */
import type { EngineClient } from '../engine/engine-client.js';
import { GREEDY_DEFAULTS } from '../engine/sampling/defaults.js';
import type { GenerationRequest } from '../engine/types.js';
import type { ScoredSpan } from './prepare.js';

/** Calibrator id → resolved config: exactly `GenerationRequest['calibration']`. */
export type ResolvedCalibration = GenerationRequest['calibration'];

export interface ScoreOptions {
  /** Most requests in flight at once; bounds worker memory on big searches. */
  maxInFlight?: number;
  /** Called after every finished request. */
  onProgress?: (done: number, total: number) => void;
}

let runCounter = 0;

/**
 * For each calibration, the summed logprob of every span's scored tokens (same order as `spans`).
 * Rejects on the first engine error, naming the span.
 */
export async function scoreSpans(
  client: EngineClient,
  spans: readonly ScoredSpan[],
  calibrations: readonly ResolvedCalibration[],
  opts: ScoreOptions = {},
): Promise<Float64Array[]> {
  const run = ++runCounter;
  const out = calibrations.map(() => new Float64Array(spans.length));
  const total = spans.length * calibrations.length;
  const limit = Math.max(1, opts.maxInFlight ?? 8192);
  let next = 0;
  let done = 0;

  const one = async (job: number): Promise<void> => {
    const c = Math.floor(job / spans.length);
    const s = job % spans.length;
    const span = spans[s]!;
    const stream = client.generate({
      id: `eval-${process.pid}-${run}-${job}`,
      promptIds: span.ids,
      ...(span.images ? { images: span.images } : {}),
      sampling: { ...GREEDY_DEFAULTS, maxTokens: 0, promptLogprobs: 0 },
      calibration: calibrations[c]!,
    });
    let sum: number | null = null;
    for await (const e of stream) {
      if (e.type === 'prompt') {
        sum = 0;
        for (let t = span.start; t < span.ids.length; t++) {
          const lp = e.logprobs[t];
          if (!lp) throw new Error(`span ${s}: the engine gave no logprob for prompt token ${t}`);
          sum += lp.logprob;
        }
      } else if (e.type === 'error') throw new Error(`span ${s} (calibration ${c}): ${e.message}`);
    }
    if (sum === null) throw new Error(`span ${s} (calibration ${c}): the engine finished without prompt logprobs`);
    out[c]![s] = sum;
    opts.onProgress?.(++done, total);
  };

  // A fixed pool of lanes, each taking the next job: keeps `limit` requests queued in the engine.
  // After a failure the lanes stop taking jobs, so the error surfaces without scoring the rest.
  let failed = false;
  const lanes = Array.from({ length: Math.min(limit, total) }, async () => {
    try {
      while (next < total && !failed) await one(next++);
    } catch (e) {
      failed = true;
      throw e;
    }
  });
  await Promise.all(lanes);
  return out;
}
