/**
 * The calibrator plugin contract. A calibrator is one module in this folder: a zod schema for its
 * per-request config and for its section of model profiles, graph fragments compiled into the
 * decoder (and read-only taps on the vision tower) at hook points, and the per-step feeds, extra
 * sequences, logit mixing and reports that run inside the engine worker. Nothing else in attune
 * changes to add one.
 */
import type { z } from 'zod';
import type { DecoderConfig } from '../models/checkpoint/decoder-weights.js';
import type { HookFragment } from '../models/compiler/hooks.js';
import type { ImageSpan } from '../models/compiler/step-geometry.js';
import type { VisionTapFragment } from '../models/compiler/vision-hooks.js';
import type { LogitsProcessor } from '../src/engine/sampling/logits-processor.js';
import type { ModelProfile } from '../models/profiles/profile.js';
import type { VisionFacts } from '../models/vision-model.js';

/** What a calibrator may know about the vision tower of an LVLM is defined with the model's vision facts. */
export type { ImageSpan, VisionFacts };

/** What a calibrator may know about the served model. */
export interface ModelFacts {
  name: string;
  config: DecoderConfig;
  profile: ModelProfile;
  /** Present for vision-language models. */
  vision?: VisionFacts;
}

/** A client mistake in `calibration.<id>`; the API turns it into a 400 naming `path`. */
export class CalibrationConfigError extends Error {
  constructor(readonly path: (string | number)[], message: string) {
    super(message);
  }
}

/** A request's rendered prompt, as a calibrator sees it before the request is accepted. */
export interface PromptFacts {
  promptIds: readonly number[];
  images: readonly ImageSpan[];
}

/** One row during one engine step, as a calibrator sees it. */
export interface RowStep {
  /** Positions in the cache before this step. */
  readonly past: number;
  /** Real (unpadded) tokens this step adds. */
  readonly newTokens: number;
  readonly promptLength: number;
  /** True while the step processes prompt tokens. */
  readonly isPrefill: boolean;
  /** The row's image placeholder spans, in sequence positions (empty for text-only rows). */
  readonly images: readonly ImageSpan[];
  /** The row's state buffer for one of this calibrator's states, in position space (zero-copy). */
  state(name: string): Float32Array;
  /** Current capacity of the position axis in state buffers. */
  readonly capacity: number;
  /**
   * The key axis of this step's attention tensors is `[fedCap past slots | paddedNewTokens new]`:
   * past slot j holds position j (filled when j < past); new key t holds position past + t (real
   * when t < newTokens).
   */
  readonly fedCap: number;
  readonly paddedNewTokens: number;
}

/** Writes this row's slice of one control input (`values` covers the per-row dims, row-major). */
export interface RowInputWriter {
  set(name: string, values: ArrayLike<number> | number): void;
}

/** A tap's value for one row (or one image): its data without the leading batch axis. */
export interface TapValue {
  data: Float32Array;
  dims: readonly number[];
}

/** This calibrator's taps for one row or image, by the name it declared them with. */
export type Taps = ReadonlyMap<string, TapValue>;

/**
 * An extra sequence a request owns on a calibrator's behalf (vLLM's "request-owned" sequences).
 * - `prepass`: prefilled before the request's own prefill (it may batch with other fresh prompts),
 *   its taps are handed to `afterAuxiliary`, and its slot is freed at once; it gates the parent.
 * - `companion`: admitted with the parent, prefilled in the same call, fed the parent's sampled token
 *   every step, never samples or emits; its logits reach `mixLogits`; released with the parent.
 * Auxiliary sequences run in the parent's graph with every calibrator off (identity inputs), so
 * they compute the plain model; only their taps and logits are used.
 */
export interface AuxiliarySpec {
  name: string;
  role: 'prepass' | 'companion';
  promptIds: number[];
}

export type CalibrationDetail = 'summary' | 'full';

export interface Calibrator<Config, RowMemo = unknown> {
  readonly id: string;
  /** One line for `GET /v1/calibrators`. */
  readonly summary: string;
  /** The object form of `calibration.<id>`, used for validation and published as JSON Schema. */
  readonly schema: z.ZodType;
  /** The calibrator's section of a model profile (`"<id>": {...}`); absent: it reads none. */
  readonly profileSchema?: z.ZodType;
  /** Calibrators that cannot share a row with this one: asking for both is a 400. */
  readonly conflicts?: readonly string[];
  /**
   * KV slots this config's auxiliary sequences hold (as many as `auxiliary` returns). Admission counts
   * them before the prompt is rendered, so an overloaded server refuses before any heavy work.
   */
  extraSlots?(config: Config): number;
  /** Turns `true` or a validated object into a complete config, filling defaults from the profile. */
  resolve(value: true | Record<string, unknown>, model: ModelFacts): Config;
  /**
   * Refuses a request whose rendered prompt lacks what the calibrator needs (e.g. an image): the
   * returned message becomes a 400 naming `calibration.<id>`. Null accepts.
   */
  checkPrompt?(config: Config, prompt: PromptFacts, model: ModelFacts): string | null;
  /** False for settings that change nothing (e.g. ACT with beta 1): such rows run the plain graph. */
  isActive(config: Config): boolean;
  /** Rows whose results depend on seeing the whole prompt in one forward pass. */
  needsWholePrefill(config: Config): boolean;
  /** Compile-time graph fragments for the decoder. */
  fragments(model: ModelFacts): HookFragment[];
  /** Compile-time read-only taps on the vision tower (LVLMs). */
  visionTaps?(model: ModelFacts): VisionTapFragment[];
  /** Per-row memory kept across steps (e.g. what was detected at prefill), for feeds and reports. */
  createMemo(config: Config): RowMemo;
  /** Extra sequences this request needs (see AuxiliarySpec); called once, at submission. */
  auxiliary?(config: Config, prompt: PromptFacts, model: ModelFacts): AuxiliarySpec[];
  /** Once per row, after its images were encoded: this calibrator's vision taps, one entry per image. */
  afterVision?(config: Config, memo: RowMemo, images: readonly Taps[]): void;
  /** When an auxiliary sequence of this request has been prefilled: its taps (at the step that ended its prompt). */
  afterAuxiliary?(config: Config, memo: RowMemo, name: string, taps: Taps): void;
  /** This row's control values for one step. Inputs it does not set keep their identity value. */
  writeInputs(config: Config, row: RowStep, inputs: RowInputWriter, memo: RowMemo): void;
  /** Runs after the step's state outputs were written back; `taps` are this calibrator's, for this row. */
  afterStep?(config: Config, row: RowStep, memo: RowMemo, taps: Taps): void;
  /**
   * Mixes companion logits into this row's logits (`own`, raw, edited in place) before the logits
   * processors; returned logprobs stay those of the raw row. `companions` are by AuxiliarySpec name.
   */
  mixLogits?(config: Config, memo: RowMemo, own: Float32Array, companions: ReadonlyMap<string, Float32Array>): void;
  /** A TypeScript logits hook, run before sampling. */
  logitsProcessor?(config: Config): LogitsProcessor | null;
  /** What the calibrator did for this request, for the response and metrics. */
  report(config: Config, memo: RowMemo, detail: CalibrationDetail): Record<string, unknown>;
}

/**
 * The registry's element type: configs are opaque to the engine. (Method parameters are checked
 * bivariantly, so every `Calibrator<C, M>` is assignable to it.)
 */
export type AnyCalibrator = Calibrator<unknown, unknown>;
