/**
 * The `--calibration` argument: the same object as the API's `calibration` field, checked and
 * completed by the API's own code (src/api/calibration.ts), so an eval measures exactly what a
 * request with that field would get, and errors name the same field paths.
 */
import { CALIBRATORS, calibratorById } from '../../calibrators/index.js';
import type { ModelFacts } from '../../calibrators/calibrator.js';
import { actProfile, actLayersFor } from '../../calibrators/act.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import { parseCalibration } from '../api/calibration.js';
import { ApiError } from '../api/errors.js';
import type { ResolvedCalibration } from './scorer.js';
import type { ScoredSpan } from './prepare.js';

export class CalibrationArgError extends Error {}

export function parseCalibrationArg(text: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CalibrationArgError(`--calibration is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CalibrationArgError('--calibration must be a JSON object keyed by calibrator id, e.g. \'{"act":{"heads":{"2":[0,1]}}}\'');
  }
  return raw as Record<string, unknown>;
}

/**
 * Layers named by explicit ACT heads, which the engine must compile ACT into. Read loosely: a
 * malformed value is reported by `resolveCalibration` with its path.
 */
export function actLayersNamed(request: Record<string, unknown>): number[] {
  const heads = (request.act as { heads?: unknown } | undefined)?.heads;
  if (typeof heads !== 'object' || heads === null || Array.isArray(heads)) return [];
  return Object.keys(heads).map(Number).filter((l) => Number.isInteger(l) && l >= 0);
}

/**
 * `profile` with ACT compiled into `extra` layers as well as those it already gets, or the profile
 * itself when nothing is missing. Compiling a layer in changes no output for requests that leave
 * it off (the fragment passes the original tensor through), so widening is always safe.
 */
export function withActLayers(profile: ModelProfile, nLayers: number, extra: readonly number[]): ModelProfile {
  const act = actProfile(profile);
  const current = actLayersFor(profile, nLayers);
  const missing = extra.filter((l) => l < nLayers && !current.includes(l));
  if (!missing.length) return profile;
  const layers = [...new Set([...current, ...missing])].sort((a, b) => a - b);
  // No head set is invented here: `heads` only matters to requests that ask for "profile".
  return { ...profile, act: { ...(act ?? { heads: {} }), layers } };
}

/** Validates and completes every config against the facts of the engine that will run it. */
export function resolveCalibration(request: Record<string, unknown>, facts: ModelFacts): ResolvedCalibration {
  try {
    return parseCalibration({ calibration: request }, new Map(CALIBRATORS.map((c) => [c.id, c])), facts).configs;
  } catch (e) {
    if (e instanceof ApiError) throw new CalibrationArgError(e.message);
    throw e;
  }
}

/**
 * Lets each active calibrator refuse the task's prompts, as the API refuses a request (VAR on items
 * without an image): an evaluation must not report a "calibrated" score the method never touched.
 */
export function checkTaskPrompts(calibration: ResolvedCalibration, spans: readonly ScoredSpan[], facts: ModelFacts): void {
  for (const [id, config] of Object.entries(calibration)) {
    const calibrator = calibratorById(id);
    if (!calibrator?.checkPrompt || !calibrator.isActive(config)) continue;
    for (const [k, span] of spans.entries()) {
      const why = calibrator.checkPrompt(config, { promptIds: span.ids, images: span.images?.spans ?? [] }, facts);
      if (why) throw new CalibrationArgError(`calibration.${id}: ${why} (scored sequence ${k + 1} has none)`);
    }
  }
}
