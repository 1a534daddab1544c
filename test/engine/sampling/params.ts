import type { SamplingParams } from '../../../src/engine/types.js';
import { GREEDY_DEFAULTS } from '../../../src/engine/sampling/defaults.js';

/** Every option off: temperature 1, no truncation, no penalties. */
export const BASE_PARAMS: SamplingParams = { ...GREEDY_DEFAULTS, temperature: 1 };
