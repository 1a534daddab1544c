/** Messages between the engine client (main thread) and the engine worker. */
import type { DecoderConfig } from '../../models/checkpoint/decoder-weights.js';
import type { VisionFacts } from '../../models/vision-model.js';
import type { ResolvedModel } from '../../models/resolve.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import type { EngineOptions } from './engine-options.js';
import type { LoadTimes } from './load-times.js';
import type { EngineEvent, GenerationRequest } from './types.js';

export interface WorkerInit {
  model: ResolvedModel;
  options: EngineOptions;
  /** Replaces the model's own profile (used by the head search to compile ACT into every layer). */
  profile?: ModelProfile;
}

export interface EngineStats {
  running: number;
  waiting: number;
  slotsInUse: number;
  maxSlots: number;
  capacity: number;
}

export interface ModelInfo {
  name: string;
  config: DecoderConfig;
  maxModelLen: number;
  /** KV slots: rows decoded together. */
  maxBatch: number;
  calibrators: string[];
  /** The vision tower's facts for an LVLM; null for text-only models. */
  vision: VisionFacts | null;
  provider: string;
  loadMs: number;
  /** Where the load time went: reading and encoding weights, pre-packing, compiling, sessions. */
  load: LoadTimes;
}

export type ToWorker =
  | { type: 'submit'; req: GenerationRequest }
  | { type: 'abort'; id: string }
  | { type: 'probe'; nonce: number }
  /** Fault drill: the worker dies as an uncaught error would kill it (handled between steps). */
  | { type: 'crash' }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  /** `steps`: tokens each engine step fed the model since the last message (prompt tokens + decoded rows). */
  | { type: 'events'; events: EngineEvent[]; stats: EngineStats; steps: number[] }
  | { type: 'rejected'; id: string; message: string }
  | { type: 'probe'; nonce: number; ok: boolean; message?: string }
  | { type: 'fatal'; message: string };
