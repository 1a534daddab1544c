/** The readiness probe: a real one-token forward through the engine, hidden from clients. */
import type { GenerationRequest, SamplingParams } from './types.js';

export const PROBE_ID_PREFIX = '__probe_';

export const GREEDY_DEFAULTS: SamplingParams = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  logitBias: {},
  maxTokens: 16,
  stopTokenIds: [],
  stopStrings: [],
  ignoreEos: false,
  logprobs: null,
  promptLogprobs: null,
  includeStopStrInOutput: false,
};

export function greedyProbeRequest(id: string, tokenId: number): GenerationRequest {
  return { id, promptIds: [tokenId], sampling: { ...GREEDY_DEFAULTS, maxTokens: 1 }, calibration: {} };
}
