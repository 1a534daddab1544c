/**
 * The engine's request and event vocabulary. These cross the worker boundary as structured-clone
 * messages, so they are plain data: no classes, no functions.
 */
import type { ImageSpan } from '../../models/compiler/step-geometry.js';

export type { ImageSpan };

export interface SamplingParams {
  /** 0 means greedy (argmax). */
  temperature: number;
  /** 1 means off. */
  topP: number;
  /** 0 means off. */
  topK: number;
  /** 0 means off. */
  minP: number;
  /** 1 means off. HF/vLLM semantics: over prompt and generated tokens, divide positive logits, multiply negative ones. */
  repetitionPenalty: number;
  /** OpenAI semantics, over generated tokens only. 0 means off. */
  presencePenalty: number;
  frequencyPenalty: number;
  /** Token id -> additive bias in [-100, 100]. */
  logitBias: Record<number, number>;
  /** Per-request PRNG seed; undefined means a fresh random seed. */
  seed?: number;
  /** Generated tokens, not counting the prompt. */
  maxTokens: number;
  /** Extra stop token ids; the model's own stop ids apply unless ignoreEos. */
  stopTokenIds: number[];
  stopStrings: string[];
  ignoreEos: boolean;
  /** Return this many top alternatives for each generated token (0 = only the sampled token's logprob); null = no logprobs. */
  logprobs: number | null;
  /** Same, for prompt tokens (the first prompt token has none). null = not requested. */
  promptLogprobs: number | null;
  /** Keep stop strings in the output text (vLLM's include_stop_str_in_output). */
  includeStopStrInOutput: boolean;
  /**
   * vLLM's min_tokens: until this many tokens are generated, stop tokens (EOS included) cannot be
   * sampled and stop strings cannot end; 0 or absent = off.
   */
  minTokens?: number;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface TokenLogprobs {
  /** The logprob of the token that was chosen (sampled or given in the prompt). */
  logprob: number;
  /** Its 1-based rank in the vocabulary: the number of tokens at least as likely, itself included (vLLM's, so ties take the last place). */
  rank: number;
  /** Highest-probability alternatives, most likely first. */
  top: TokenLogprob[];
}

/** One preprocessed image, as the vision tower takes it. */
export interface ImageInput {
  /** `[3, H, W]` float32, normalised. */
  pixels: Float32Array;
  /** A digest of the pixels: sequences sending the same image in one step encode it once. */
  key: string;
}

/**
 * A request's images: `inputs[k]` fills the placeholder span whose `image` is k. Spans are prompt
 * positions holding the model's image token, in order.
 */
export interface RequestImages {
  spans: ImageSpan[];
  inputs: ImageInput[];
}

export interface GenerationRequest {
  id: string;
  promptIds: number[];
  images?: RequestImages;
  sampling: SamplingParams;
  /** Calibrator id -> resolved config, already validated at the edge. Absent ids are off. */
  calibration: Record<string, unknown>;
  /** How much each calibrator reports: 'full' adds per-layer and per-head detail. */
  calibrationDetail?: 'summary' | 'full';
}

export type FinishReason = 'stop' | 'length' | 'abort';

export type EngineEvent =
  | { type: 'prompt'; id: string; logprobs: (TokenLogprobs | null)[] }
  | {
      type: 'tokens';
      id: string;
      /** Tokens produced in one engine step (normally one). */
      tokenIds: number[];
      /** Text released to the client by these tokens; stop-string candidates are held back. */
      text: string;
      logprobs: TokenLogprobs[] | null;
    }
  | {
      type: 'finish';
      id: string;
      reason: FinishReason;
      /** The stop string or request stop token id that ended it (vLLM's stop_reason); null at EOS or length. */
      stoppedBy: string | number | null;
      promptTokens: number;
      completionTokens: number;
      /** Per-calibrator reports, keyed by calibrator id. */
      calibration: Record<string, unknown>;
      timing: RequestTiming;
    }
  | { type: 'error'; id: string; reason: EngineErrorReason; message: string };

export type EngineErrorReason = 'internal' | 'validation' | 'timeout' | 'aborted';

/** Milliseconds on the worker's clock, relative to the request's arrival at the worker. */
export interface RequestTiming {
  queuedMs: number;
  /** Vision-tower time of the encoder calls that held this request's images (0 without images). */
  encodeMs: number;
  /**
   * Prefill time of the calls that held this request's prepass sequences (a calibrator's extra
   * pass before the real prefill, e.g. VHR's text-only pass); 0 without one. Part of prefillMs.
   */
  prepassMs: number;
  prefillMs: number;
  decodeMs: number;
}
