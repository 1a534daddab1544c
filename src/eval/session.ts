/**
 * What `attune eval` and `attune profile` share: a resolved model, its tokenizer and profile, and
 * an engine tuned for scoring. Scoring is prompt-only work (no decode steps), so the engine gets
 * many slots and a large prefill budget: the defaults suit interactive serving, where they bound
 * latency, which does not matter here.
 */
import type { ModelFacts } from '../../calibrators/calibrator.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import { loadModelProfile } from '../../calibrators/index.js';
import { resolveModel, type ResolvedModel } from '../../models/resolve.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { EngineClient } from '../engine/engine-client.js';
import type { EngineOptionsInput } from '../engine/engine-options.js';
import { readModelShape, type ModelShape } from './model-shape.js';

export interface EvalModel {
  resolved: ResolvedModel;
  tokenizer: Tokenizer;
  shape: ModelShape;
  /** The model's own profile (next to the weights, else built in). */
  profile: ModelProfile;
}

export async function loadEvalModel(spec: string): Promise<EvalModel> {
  const resolved = await resolveModel(spec);
  const shape = await readModelShape(resolved);
  return { resolved, shape, tokenizer: await loadTokenizer(resolved), profile: loadModelProfile(resolved.name, resolved.dir) };
}

export const SCORING_ENGINE: EngineOptionsInput = { maxBatch: 128, maxPrefillTokensPerStep: 4096 };

export interface EvalEngine {
  client: EngineClient;
  /** What calibrators see in this engine: its profile, which may differ from the model's own. */
  facts: ModelFacts;
}

export async function startEvalEngine(model: EvalModel, profile: ModelProfile, engine: EngineOptionsInput = {}): Promise<EvalEngine> {
  const client = await EngineClient.start({ model: model.resolved, profile, engine: { ...SCORING_ENGINE, ...engine } });
  const vision = client.info.vision;
  return { client, facts: { name: model.resolved.name, config: client.info.config, profile, ...(vision ? { vision } : {}) } };
}
