import type { SamplingParams } from '../types.js';

/** Greedy decoding with every processor off; callers override what they need. */
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
