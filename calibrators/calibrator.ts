/**
 * The calibrator plugin contract. A calibrator is one module in this folder: a zod schema for its
 * per-request config, graph fragments compiled into the decoder at hook points, and the per-step
 * feeds and reports that run inside the engine worker. Nothing else in attune changes to add one.
 */
import type { z } from 'zod';
import type { DecoderConfig } from '../models/checkpoint/decoder-weights.js';
import type { HookFragment } from '../models/compiler/hooks.js';
import type { LogitsProcessor } from '../src/engine/sampling/logits-processor.js';
import type { ModelProfile } from '../models/profiles/profile.js';

/** What a calibrator may know about the served model. */
export interface ModelFacts {
  name: string;
  config: DecoderConfig;
  profile: ModelProfile;
}

/** A client mistake in `calibration.<id>`; the API turns it into a 400 naming `path`. */
export class CalibrationConfigError extends Error {
  constructor(readonly path: (string | number)[], message: string) {
    super(message);
  }
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

export type CalibrationDetail = 'summary' | 'full';

export interface Calibrator<Config, RowMemo = unknown> {
  readonly id: string;
  /** One line for `GET /v1/calibrators`. */
  readonly summary: string;
  /** The object form of `calibration.<id>`, used for validation and published as JSON Schema. */
  readonly schema: z.ZodType;
  /** Turns `true` or a validated object into a complete config, filling defaults from the profile. */
  resolve(value: true | Record<string, unknown>, model: ModelFacts): Config;
  /** False for settings that change nothing (e.g. ACT with beta 1): such rows run the plain graph. */
  isActive(config: Config): boolean;
  /** Rows whose results depend on seeing the whole prompt in one forward pass. */
  needsWholePrefill(config: Config): boolean;
  /** Compile-time graph fragments. */
  fragments(model: ModelFacts): HookFragment[];
  /** Per-row memory kept across steps (e.g. what was detected at prefill), for reports. */
  createMemo(config: Config): RowMemo;
  /** This row's control values for one step. Inputs it does not set keep their identity value. */
  writeInputs(config: Config, row: RowStep, inputs: RowInputWriter): void;
  /** Runs after the step's state outputs were written back. */
  afterStep?(config: Config, row: RowStep, memo: RowMemo): void;
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
