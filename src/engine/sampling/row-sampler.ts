/**
 * One row's sampling state across steps: its token history, logits processors, PRNG and logprobs
 * setting. Each step: keep a raw copy if logprobs need one → processors (bias, penalties, extra) →
 * select (token-selection.ts) → raw logprobs → record the token.
 */
import type { SamplingParams, TokenLogprobs } from '../types.js';
import { buildLogitsProcessors } from './build-processors.js';
import type { LogitsProcessor } from './logits-processor.js';
import { computeTokenLogprobs, MAX_TOP_LOGPROBS } from './logprobs.js';
import { createRowRng, type UniformSource } from './rng.js';
import { type SelectionParams, isGreedy, SamplingScratch, selectToken, validateSelectionParams } from './token-selection.js';
import { TokenHistory } from './token-history.js';

export interface RowSamplerOptions {
  /** Share one across rows sampled one after another on the same thread; one is made if absent. */
  scratch?: SamplingScratch;
  /** Appended after the built-in processors (calibrators'). */
  extraProcessors?: readonly LogitsProcessor[];
  /** Replaces the seeded/entropy PRNG (tests). */
  rng?: UniformSource;
  /** The model's own stop ids (EOS), which min_tokens holds back. */
  modelStopIds?: readonly number[];
}

export interface SampledToken {
  tokenId: number;
  /** Null when the request did not ask for logprobs. */
  logprobs: TokenLogprobs | null;
}

export class RowSampler {
  readonly history: TokenHistory;
  private readonly processors: readonly LogitsProcessor[];
  private readonly selection: SelectionParams;
  private readonly greedy: boolean;
  private readonly topLogprobs: number | null;
  private readonly scratch: SamplingScratch;
  private readonly rng: UniformSource | null;

  constructor(params: SamplingParams, promptIds: readonly number[], opts: RowSamplerOptions = {}) {
    validateSelectionParams(params);
    if (params.logprobs !== null && !(Number.isInteger(params.logprobs) && params.logprobs >= 0 && params.logprobs <= MAX_TOP_LOGPROBS)) {
      throw new RangeError(`logprobs must be null or an integer in [0, ${MAX_TOP_LOGPROBS}], got ${params.logprobs}`);
    }
    this.history = new TokenHistory(promptIds);
    this.processors = buildLogitsProcessors(params, opts.extraProcessors, opts.modelStopIds);
    this.selection = { temperature: params.temperature, topK: params.topK, topP: params.topP, minP: params.minP };
    this.greedy = isGreedy(params);
    this.topLogprobs = params.logprobs;
    this.scratch = opts.scratch ?? new SamplingScratch();
    // A greedy row never draws, so it needs no entropy.
    this.rng = opts.rng ?? (this.greedy ? null : createRowRng(params.seed));
  }

  /**
   * Chooses this row's next token from its logits row, which `mix` (a calibrator's logit mixing,
   * e.g. guidance from a companion sequence) and then the processors overwrite in place. Logprobs
   * are those of the raw row, before mixing (vLLM's raw-output semantics).
   */
  sample(logits: Float32Array, mix?: (logits: Float32Array) => void): SampledToken {
    const topN = this.topLogprobs;
    const raw = topN !== null && (this.processors.length > 0 || mix) ? this.scratch.keepRaw(logits) : logits;
    mix?.(logits);
    for (const p of this.processors) p.process(this.history, logits);
    const tokenId = this.greedy ? selectToken(logits, this.selection, this.scratch, NO_DRAWS) : selectToken(logits, this.selection, this.scratch, this.rng!);
    const logprobs = topN !== null ? computeTokenLogprobs(raw, tokenId, topN) : null;
    this.history.append(tokenId);
    return { tokenId, logprobs };
  }
}

const NO_DRAWS: UniformSource = {
  nextUniform(): number {
    throw new Error('a greedy row drew a random number');
  },
};
