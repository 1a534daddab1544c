/**
 * Domain metrics from calibrator reports, with no per-calibrator code in the server: every finite
 * top-level number in a calibrator's finish report becomes one observation of the histogram
 * `attune:<calibrator>_<field>` (ACT's `sinks_detected` → `attune:act_sinks_detected`). A calibrator
 * author gets a metric by putting a number in the report. Fields named like the calibrator's config
 * keys are skipped: they echo what the request asked for (ACT's `beta`), not what happened.
 *
 * The field name picks the buckets: `*_seconds` latency buckets, `*_ratio|_share|_frac|_perc`
 * [0, 1] buckets, anything else vLLM's 1-2-5 count series. Histograms are created on first use,
 * and their number is capped, because field names come from code we do not review here.
 */
import { Histogram, type Registry } from 'prom-client';
import { CALIBRATION_SECONDS_BUCKETS, COUNT_BUCKETS, RATIO_BUCKETS } from './buckets.js';

const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MAX_REPORT_HISTOGRAMS = 64;

export function bucketsForField(field: string): number[] {
  if (/_seconds$/.test(field)) return CALIBRATION_SECONDS_BUCKETS;
  if (/_(ratio|share|frac|fraction|perc)$/.test(field)) return RATIO_BUCKETS;
  return COUNT_BUCKETS;
}

export class ReportHistograms {
  private readonly histograms = new Map<string, Histogram | null>();
  private readonly configKeys = new Map<string, ReadonlySet<string>>();

  constructor(private readonly registry: Registry) {}

  /** The calibrator's config keys, whose echoes in a report are not observations. */
  setConfigKeys(calibrator: string, keys: Iterable<string>): void {
    this.configKeys.set(calibrator, new Set(keys));
  }

  observe(calibrator: string, report: unknown): void {
    if (typeof report !== 'object' || report === null || Array.isArray(report)) return;
    const skip = this.configKeys.get(calibrator);
    for (const [field, value] of Object.entries(report)) {
      if (typeof value !== 'number' || !Number.isFinite(value) || skip?.has(field)) continue;
      this.histogram(calibrator, field)?.observe(value);
    }
  }

  /** Names the histograms seen so far (for tests and docs). */
  get names(): string[] {
    return [...this.histograms.entries()].filter(([, h]) => h !== null).map(([n]) => n);
  }

  private histogram(calibrator: string, field: string): Histogram | null {
    const name = `attune:${calibrator}_${field}`;
    const known = this.histograms.get(name);
    if (known !== undefined) return known;
    let h: Histogram | null = null;
    // A rejected name is remembered as null so a bad field costs one check, not one per request.
    if (METRIC_NAME.test(calibrator) && METRIC_NAME.test(field) && this.histograms.size < MAX_REPORT_HISTOGRAMS && !this.registry.getSingleMetric(name)) {
      h = new Histogram({
        name,
        help: `Per-request '${field}' from the ${calibrator} calibrator's report`,
        buckets: bucketsForField(field),
        registers: [this.registry],
      });
    }
    this.histograms.set(name, h);
    return h;
  }
}
