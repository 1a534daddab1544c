import type { SamplingParams } from '../../../src/engine/types.js';
import { GREEDY_DEFAULTS } from '../../../src/engine/probe.js';

/** Every option off: temperature 1, no truncation, no penalties. */
export const BASE_PARAMS: SamplingParams = { ...GREEDY_DEFAULTS, temperature: 1 };
