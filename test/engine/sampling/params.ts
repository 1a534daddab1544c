import type { SamplingParams } from '../../../src/engine/types.js';

/** Every option off: temperature 1, no truncation, no penalties. */
export const BASE_PARAMS: SamplingParams = {
  temperature: 1,
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
