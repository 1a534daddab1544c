/**
 * The `--calibration` argument: the same object as the API's `calibration` field, validated by each
 * calibrator's zod schema and completed by its `resolve()`, so an eval measures exactly what a
 * request with that field would get. Errors name the field path, as the API's 400s do.
 */
import { calibratorById, CALIBRATORS } from '../../calibrators/index.js';
import { CalibrationConfigError, type ModelFacts } from '../../calibrators/calibrator.js';
import { ActConfigSchema } from '../../calibrators/act.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import { defaultActLayers } from './model-shape.js';
import type { ResolvedCalibration } from './scorer.js';

export class CalibrationArgError extends Error {}

/** Calibrator id → `true` or its schema-checked config object; `false` entries are dropped. */
export type CalibrationRequest = Record<string, true | Record<string, unknown>>;

const REPORT_KEY = 'report';

export function parseCalibrationArg(text: string): CalibrationRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CalibrationArgError(`--calibration is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CalibrationArgError('--calibration must be a JSON object keyed by calibrator id, e.g. \'{"act":{"heads":{"2":[0,1]}}}\'');
  }
  const out: CalibrationRequest = {};
  for (const [id, value] of Object.entries(raw)) {
    // Reports change the response, not the logprobs; accepted so an API field can be pasted as is.
    if (id === REPORT_KEY) continue;
    const calibrator = calibratorById(id);
    if (!calibrator) throw new CalibrationArgError(`calibration.${id}: unknown calibrator '${id}'; available: ${CALIBRATORS.map((c) => c.id).join(', ')}`);
    if (value === false) continue;
    if (value === true) {
      out[id] = true;
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new CalibrationArgError(`calibration.${id}: expected true, false or a config object`);
    }
    const parsed = calibrator.schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new CalibrationArgError(`${['calibration', id, ...issue.path.map(String)].join('.')}: ${issue.message}`);
    }
    out[id] = parsed.data as Record<string, unknown>;
  }
  return out;
}

/** Layers named by explicit ACT heads: the engine must compile ACT into each of them. */
export function actLayersNamed(request: CalibrationRequest): number[] {
  const value = request.act;
  if (value === undefined || value === true) return [];
  const heads = ActConfigSchema.parse(value).heads;
  return heads && heads !== 'profile' ? Object.keys(heads).map(Number) : [];
}

/**
 * `profile` with ACT compiled into `extra` layers as well as those it already gets, or the profile
 * itself when nothing is missing. Compiling a layer in changes no output for requests that leave
 * it off (the fragment passes the original tensor through), so widening is always safe.
 */
export function withActLayers(profile: ModelProfile, nLayers: number, extra: readonly number[]): ModelProfile {
  const current = profile.act?.layers ?? defaultActLayers(nLayers);
  const missing = extra.filter((l) => !current.includes(l));
  if (!missing.length) return profile;
  const layers = [...new Set([...current, ...missing])].sort((a, b) => a - b);
  // No head set is invented here: `heads` only matters to requests that ask for "profile".
  return { ...profile, act: { ...(profile.act ?? { heads: {} }), layers } };
}

/** Completes every config against the facts of the engine that will run it. */
export function resolveCalibration(request: CalibrationRequest, facts: ModelFacts): ResolvedCalibration {
  const out: ResolvedCalibration = {};
  for (const [id, value] of Object.entries(request)) {
    const calibrator = calibratorById(id)!;
    try {
      out[id] = calibrator.resolve(value, facts);
    } catch (e) {
      if (e instanceof CalibrationConfigError) throw new CalibrationArgError(`${['calibration', id, ...e.path.map(String)].join('.')}: ${e.message}`);
      throw e;
    }
  }
  return out;
}
