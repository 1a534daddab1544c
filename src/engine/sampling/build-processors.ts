import type { SamplingParams } from '../types.js';
import { hasLogitBias, LogitBiasProcessor } from './logit-bias.js';
import type { LogitsProcessor } from './logits-processor.js';
import { MinTokensProcessor } from './min-tokens.js';
import { PresenceFrequencyPenaltyProcessor } from './presence-frequency-penalty.js';
import { RepetitionPenaltyProcessor } from './repetition-penalty.js';

export type ProcessorParams = Pick<SamplingParams, 'logitBias' | 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty'> &
  Partial<Pick<SamplingParams, 'minTokens' | 'stopTokenIds' | 'ignoreEos'>>;

/**
 * The processors a request needs, in vLLM V1's order: logit bias, then repetition penalty, then
 * frequency/presence penalties (so a bias can itself be penalised, as in vLLM), then min_tokens' ban on
 * stop tokens (after everything that could add to a logit). Processors that would be no-ops are left
 * out, so a plain request pays nothing. `extra` (calibrators' processors) runs last, on the fully
 * penalised logits, which keeps calibrator adjustments out of the penalties' reach. `modelStopIds`
 * are the model's own stop ids (EOS), which min_tokens also holds back unless ignoreEos.
 */
export function buildLogitsProcessors(params: ProcessorParams, extra: readonly LogitsProcessor[] = [], modelStopIds: readonly number[] = []): LogitsProcessor[] {
  const out: LogitsProcessor[] = [];
  if (hasLogitBias(params.logitBias)) out.push(new LogitBiasProcessor(params.logitBias));
  if (params.repetitionPenalty !== 1) out.push(new RepetitionPenaltyProcessor(params.repetitionPenalty));
  if (params.presencePenalty !== 0 || params.frequencyPenalty !== 0) {
    out.push(new PresenceFrequencyPenaltyProcessor(params.presencePenalty, params.frequencyPenalty));
  }
  if ((params.minTokens ?? 0) > 0) {
    out.push(new MinTokensProcessor(params.minTokens!, [...(params.ignoreEos ? [] : modelStopIds), ...(params.stopTokenIds ?? [])]));
  }
  out.push(...extra);
  return out;
}
