/**
 * The per-request `calibration` field: `{ <calibrator id>: false | true | {config}, report?: "summary" | "full" }`,
 * also accepted as `vllm_xargs.calibration` (an object, or a JSON string for clients whose extra
 * args are scalars). Each config is validated by its calibrator's zod schema and completed by its
 * `resolve()` against the model profile, so the engine only ever sees complete, valid configs.
 * Every failure is a 400 whose `param` is the full path, e.g. `calibration.act.beta`.
 */
import { CalibrationConfigError, type AnyCalibrator, type CalibrationDetail, type ModelFacts, type PromptFacts } from '../../calibrators/calibrator.js';
import { badRequest, fieldPath } from './errors.js';
import { parseJsonText } from './json-body.js';
import { countKeysBeyond } from './schemas/common.js';
import { describeIssue } from './validation.js';

export interface CalibrationSelection {
  /** Calibrator id -> resolved config, for GenerationRequest.calibration (ids that are on). */
  configs: Record<string, unknown>;
  /** Calibrators whose config changes something (metrics count these; identity settings are off). */
  ids: string[];
  detail: CalibrationDetail;
  /** The request had a calibration field at all (then the response carries a calibration object). */
  requested: boolean;
  /** KV slots the active calibrators' auxiliary sequences add to each sequence. */
  extraSlots: number;
  /** Where the calibration field was given (`calibration` or `vllm_xargs.calibration`), for error paths. */
  base: string;
  /** Calibrators the request turned off by name (`"act": false`): reported as `{"active": false}`. */
  off: string[];
}

const REPORT_KEY = 'report';
const NONE: CalibrationSelection = { configs: {}, ids: [], detail: 'summary', requested: false, extraSlots: 0, base: 'calibration', off: [] };

export function parseCalibration(
  body: { calibration?: unknown; vllm_xargs?: Record<string, unknown> | undefined },
  calibrators: ReadonlyMap<string, AnyCalibrator>,
  facts: ModelFacts,
): CalibrationSelection {
  const direct = body.calibration;
  const viaXargs = body.vllm_xargs?.calibration;
  if (direct !== undefined && direct !== null && viaXargs !== undefined) {
    throw badRequest('give calibration either at the top level or in vllm_xargs, not both', 'vllm_xargs.calibration');
  }
  if (direct !== undefined && direct !== null) return parseObject(direct, 'calibration', calibrators, facts);
  if (viaXargs !== undefined) return parseObject(fromXargs(viaXargs), 'vllm_xargs.calibration', calibrators, facts);
  return NONE;
}

/** Clients whose extra args are scalars send the object as JSON text; it is read like a body. */
function fromXargs(v: unknown): unknown {
  return typeof v === 'string' ? parseJsonText(v, 'vllm_xargs.calibration') : v;
}

function parseObject(raw: unknown, base: string, calibrators: ReadonlyMap<string, AnyCalibrator>, facts: ModelFacts): CalibrationSelection {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw badRequest(`${base}: expected an object keyed by calibrator id (see GET /v1/calibrators)`, base);
  }
  if (countKeysBeyond(raw, calibrators.size + 1)) {
    throw badRequest(`${base}: more keys than there are calibrators (${[...calibrators.keys(), REPORT_KEY].join(', ')})`, base);
  }
  const selection: CalibrationSelection = { configs: {}, ids: [], detail: 'summary', requested: true, extraSlots: 0, base, off: [] };
  for (const [key, value] of Object.entries(raw)) {
    const path = `${base}.${key}`;
    if (key === REPORT_KEY) {
      if (value !== 'summary' && value !== 'full') throw badRequest(`${path}: expected "summary" or "full"`, path);
      selection.detail = value;
      continue;
    }
    const calibrator = calibrators.get(key);
    if (!calibrator) {
      const known = [...calibrators.keys()];
      throw badRequest(
        `${path}: unknown calibrator '${key}'; ${known.length ? `available: ${known.join(', ')}` : 'this server has no calibrators'}`,
        path,
        'unknown_calibrator',
      );
    }
    if (value === false) {
      selection.off.push(key);
      continue;
    }
    const config = resolveOne(calibrator, value, path, facts);
    selection.configs[key] = config;
    if (calibrator.isActive(config)) {
      selection.ids.push(key);
      selection.extraSlots += calibrator.extraSlots?.(config) ?? 0;
    }
  }
  // Registry order, whatever order the client listed them in; and conflicts are refused here, not in the engine.
  selection.ids = [...calibrators.keys()].filter((id) => selection.ids.includes(id));
  for (const id of selection.ids) {
    const clash = calibrators.get(id)!.conflicts?.find((other) => selection.ids.includes(other));
    if (clash) {
      throw badRequest(`${base}: ${id} and ${clash} cannot run on the same request (both rewrite the same attention; see GET /v1/calibrators)`, `${base}.${id}`, 'calibrator_conflict');
    }
  }
  return selection;
}

/**
 * Lets each active calibrator refuse a rendered prompt that lacks what it needs (e.g. VAR without an
 * image): a 400 naming `calibration.<id>`.
 */
export function checkCalibrationPrompt(selection: CalibrationSelection, calibrators: ReadonlyMap<string, AnyCalibrator>, prompt: PromptFacts, facts: ModelFacts): void {
  for (const id of selection.ids) {
    const why = calibrators.get(id)!.checkPrompt?.(selection.configs[id], prompt, facts);
    if (why) throw badRequest(`${selection.base}.${id}: ${why}`, `${selection.base}.${id}`, 'calibration_not_applicable');
  }
}

/**
 * A calibrator config names at most every head of every layer once, plus a few settings. One that
 * holds more values is refused before its schema walks it (a million layer keys took 5.6 s, and a
 * four-million-element head list was accepted). The walk stops at the first value over the budget.
 */
function checkConfigSize(config: object, path: string, facts: ModelFacts): void {
  const { nLayers, nHeads } = facts.config;
  const budget = (nLayers + 1) * (nHeads + 1) + 64;
  let seen = 0;
  const stack: { value: unknown; at: string }[] = [{ value: config, at: path }];
  while (stack.length) {
    const { value, at } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    const entries = Array.isArray(value) ? value.length : undefined;
    if (entries !== undefined ? seen + entries > budget : countKeysBeyond(value, budget - seen)) {
      throw badRequest(`${at}: too many values; a calibration config for this model (${nLayers} layers of ${nHeads} heads) holds at most ${budget}`, at, 'too_large');
    }
    for (const k in value) {
      if (!Object.prototype.hasOwnProperty.call(value, k)) continue;
      seen++;
      stack.push({ value: (value as Record<string, unknown>)[k], at: `${at}.${k}` });
    }
  }
}

function resolveOne(calibrator: AnyCalibrator, value: unknown, path: string, facts: ModelFacts): unknown {
  let input: true | Record<string, unknown>;
  if (value === true) input = true;
  else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    checkConfigSize(value, path, facts);
    const parsed = calibrator.schema.safeParse(value);
    if (!parsed.success) {
      const issue = describeIssue(parsed.error.issues);
      const at = issue.path.length ? `${path}.${fieldPath(issue.path)}` : path;
      throw badRequest(`${at}: ${issue.message}`, at, issue.code);
    }
    input = parsed.data as Record<string, unknown>;
  } else throw badRequest(`${path}: expected true, false or a config object`, path);
  try {
    return calibrator.resolve(input, facts);
  } catch (e) {
    if (e instanceof CalibrationConfigError) {
      const at = e.path.length ? `${path}.${fieldPath(e.path)}` : path;
      throw badRequest(`${at}: ${e.message}`, at);
    }
    throw e;
  }
}
