/**
 * A request and the sequences it owns. The request (a RequestUnit) is what admission, the queue,
 * cancellation, deadlines and the drain see; each of its sequences (a Row) occupies one KV slot.
 * Its main row samples and emits. Calibrators may add auxiliary rows (AuxiliarySpec): a `prepass`,
 * prefilled before the main row and freed at once, whose taps go back to its calibrator; or a
 * `companion`, decoded in lockstep with the main row and fed its tokens, whose logits the
 * calibrator mixes into the main row's. Every row of a request runs in the request's graph.
 */
import type { AnyCalibrator, AuxiliarySpec, ModelFacts, PromptFacts } from '../../calibrators/calibrator.js';
import type { EncodedImage } from './image-encoder.js';
import type { SlotHandle } from './slot-pool.js';
import type { GenerationRequest, ImageSpan, TokenLogprobs } from './types.js';
import type { RowSampler } from './sampling/row-sampler.js';
import type { RowOutput } from './sampling/row-output.js';

export interface ActiveCalibration {
  calibrator: AnyCalibrator;
  config: unknown;
  memo: unknown;
}

export type RowRole = 'main' | AuxiliarySpec['role'];

/**
 * - waiting: not admitted yet; encode: its images are being encoded; blocked: waiting for the
 *   request's prepasses; prefill / decode: as the names say.
 */
export type RowPhase = 'waiting' | 'encode' | 'blocked' | 'prefill' | 'decode';

export interface Row {
  unit: RequestUnit;
  role: RowRole;
  /** The auxiliary sequence's name ('' for the main row). */
  name: string;
  /** The calibrator that asked for an auxiliary row. */
  owner: AnyCalibrator | null;
  promptIds: readonly number[];
  /** Image placeholder spans (main row only). */
  images: readonly ImageSpan[];
  slot: SlotHandle | null;
  phase: RowPhase;
  /** Prompt tokens already in the cache. */
  prefilled: number;
  lastToken: number;
}

export interface MainRow extends Row {
  role: 'main';
  sampler: RowSampler;
  output: RowOutput;
  promptLogprobs: (TokenLogprobs | null)[] | null;
  /** Set once the images are encoded, until the prompt is in the cache: features per image, `[tokens, dim]` row-major. */
  encoded: EncodedImage[] | null;
}

export class RequestUnit {
  readonly main: MainRow;
  readonly aux: Row[] = [];
  aborted = false;
  readonly arrivedAt = performance.now();
  scheduledAt: number | null = null;
  firstTokenAt: number | null = null;
  encodeMs = 0;
  /** Prefill time of the calls that held this request's prepass sequences. */
  prepassMs = 0;
  /**
   * Set when one of this request's calibrators threw in a per-row hook: the request fails alone at
   * the end of the step (its rows still ran with their batch-mates, whose results they do not touch).
   */
  calibratorError: string | null = null;

  constructor(
    readonly req: GenerationRequest,
    /** Active calibrations, in registry order. */
    readonly calibrations: readonly ActiveCalibration[],
    /** Requested with settings that change nothing: reported as inactive. */
    readonly idleCalibrators: readonly string[],
    /** The graph every row of this request runs in: the sorted ids of its active calibrators. */
    readonly graphIds: readonly string[],
    readonly graphKey: string,
    readonly wholePrefill: boolean,
    main: Omit<MainRow, 'unit'>,
  ) {
    this.main = { ...main, unit: this };
  }

  get id(): string {
    return this.req.id;
  }

  get rows(): Row[] {
    return [this.main, ...this.aux];
  }

  get companions(): Row[] {
    return this.aux.filter((r) => r.role === 'companion');
  }

  /** KV slots the request holds at once when admitted. */
  get slotsNeeded(): number {
    return 1 + this.aux.length;
  }

  addAuxiliary(owner: AnyCalibrator, spec: AuxiliarySpec): void {
    this.aux.push({
      unit: this,
      role: spec.role,
      name: spec.name,
      owner,
      promptIds: spec.promptIds,
      images: [],
      slot: null,
      phase: 'waiting',
      prefilled: 0,
      lastToken: spec.promptIds[spec.promptIds.length - 1]!,
    });
  }
}

export function promptFacts(req: GenerationRequest): PromptFacts {
  return { promptIds: req.promptIds, images: req.images?.spans ?? [] };
}

/** Checks a request's image spans against its prompt and the model; returns a reason, or null. */
export function checkImages(req: GenerationRequest, model: ModelFacts): string | null {
  const images = req.images ?? { spans: [], inputs: [] };
  const vision = model.vision;
  if (!vision) return images.inputs.length || images.spans.length ? `model ${model.name} has no vision tower; image inputs are not supported` : null;
  const covered = images.spans.reduce((n, s) => n + s.length, 0);
  const placeholders = req.promptIds.reduce((n, id) => n + (id === vision.imageTokenId ? 1 : 0), 0);
  if (placeholders !== covered) {
    return `the prompt holds ${placeholders} image tokens (id ${vision.imageTokenId}) but its ${images.inputs.length} image(s) fill ${covered}`;
  }
  if (images.spans.length !== images.inputs.length) return `${images.spans.length} image spans for ${images.inputs.length} images`;
  let previousEnd = 0;
  for (const [k, s] of images.spans.entries()) {
    if (s.image !== k) return `image span ${k} names image ${s.image}; spans must come in image order`;
    if (s.length !== vision.tokensPerImage) return `image ${k} has ${s.length} placeholder tokens; the model takes ${vision.tokensPerImage} per image`;
    if (s.start < previousEnd || s.start + s.length > req.promptIds.length) return `image span ${k} [${s.start}, ${s.start + s.length}) overlaps another or leaves the prompt`;
    for (let p = s.start; p < s.start + s.length; p++) {
      if (req.promptIds[p] !== vision.imageTokenId) return `prompt position ${p} inside image ${k} is not the image token ${vision.imageTokenId}`;
    }
    previousEnd = s.start + s.length;
  }
  return null;
}
