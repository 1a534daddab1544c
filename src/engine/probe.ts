/** The readiness probe: a real one-token forward through the engine, hidden from clients. */
import type { GenerationRequest } from './types.js';
import { GREEDY_DEFAULTS } from './sampling/defaults.js';

export const PROBE_ID_PREFIX = '__probe_';

export function greedyProbeRequest(id: string, tokenId: number): GenerationRequest {
  return { id, promptIds: [tokenId], sampling: { ...GREEDY_DEFAULTS, maxTokens: 1 }, calibration: {} };
}
