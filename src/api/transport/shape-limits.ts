/**
 * The JSON shape limits of request bodies, from the configured limits and the model's context: no
 * field takes more entries than the largest of them (a token-id prompt takes up to the context
 * length), and no request more values than its largest legitimate form (every prompt of a batch at
 * full context length) plus room for everything else.
 */
import type { Limits } from '../../config/schema.js';
import type { JsonShapeLimits } from './json-shape.js';

/** Headroom for everything but the prompts: messages, sampling fields, calibration. */
const OTHER_VALUES = 65_536;
/** Entries any container may have whatever the model: plenty for a calibration's head lists. */
const MIN_ENTRIES = 1024;
/** The deepest legitimate path is vllm_xargs.calibration.<id>.heads.<layer>.<index>. */
const MAX_DEPTH = 32;

export function jsonShapeLimits(limits: Limits, maxModelLen: number): JsonShapeLimits {
  return {
    maxEntries: Math.max(MIN_ENTRIES, maxModelLen, limits.maxMessages, limits.maxLogitBias, limits.maxStopStrings, limits.maxStopTokenIds, limits.maxPrompts),
    maxValues: limits.maxPrompts * maxModelLen + OTHER_VALUES,
    maxDepth: MAX_DEPTH,
  };
}
