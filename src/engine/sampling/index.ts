export { buildLogitsProcessors, type ProcessorParams } from './build-processors.js';
export { IncrementalDetokenizer, type DetokenizerOptions } from './detokenizer.js';
export { LogitBiasProcessor, hasLogitBias } from './logit-bias.js';
export type { LogitsProcessor } from './logits-processor.js';
export { computeTokenLogprobs, MAX_TOP_LOGPROBS } from './logprobs.js';
export { MinTokensProcessor } from './min-tokens.js';
export { PresenceFrequencyPenaltyProcessor } from './presence-frequency-penalty.js';
export { RepetitionPenaltyProcessor } from './repetition-penalty.js';
export { createRowRng, RowRng, type UniformSource } from './rng.js';
export { RowOutput, type RowAppendResult, type RowFinish, type RowOutputParams } from './row-output.js';
export { RowSampler, type RowSamplerOptions, type SampledToken } from './row-sampler.js';
export { StopStringMatcher, type StopScan } from './stop-strings.js';
export { TokenHistory, type RowTokenHistory } from './token-history.js';
export {
  argmaxToken,
  filterCandidates,
  GREEDY_TEMPERATURE_EPS,
  isGreedy,
  kthLargestLogit,
  nucleusThreshold,
  SamplingScratch,
  sampleFiltered,
  selectToken,
  type SelectionParams,
  validateSelectionParams,
} from './token-selection.js';
