/** Worker-side model loading: weights → compiled graphs → ORT sessions, plus the tokenizer. */
import { compileDecoder } from '../../models/compiler/decoder-graph.js';
import type { HookFragment } from '../../models/compiler/hooks.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadDecoderWeights } from '../../models/load-decoder.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import type { ResolvedModel } from '../../models/resolve.js';
import { CALIBRATORS, loadModelProfile } from '../../calibrators/index.js';
import type { AnyCalibrator, ModelFacts } from '../../calibrators/calibrator.js';
import type { EngineModel } from './engine-core.js';
import type { EngineOptions } from './engine-options.js';
import { twoGraphs } from './decoder-graphs.js';
import { DecoderSession } from './ort-session.js';

export interface EngineModelParts {
  name: string;
  weights: DecoderWeights;
  tokenizer: Tokenizer;
  profile: ModelProfile;
  calibrators: readonly AnyCalibrator[];
  /** Extra fragments compiled into the calibrated graph (tests, benchmarks). */
  extraFragments?: readonly HookFragment[];
  options: Pick<EngineOptions, 'threads' | 'providers' | 'plainFastPath'>;
}

/** Compiles the calibrated graph (every calibrator's fragments) and, unless turned off, the plain one. */
export async function buildEngineModel(parts: EngineModelParts): Promise<EngineModel> {
  const { weights, name, options } = parts;
  const facts: ModelFacts = { name, config: weights.config, profile: parts.profile };
  const fragments = [...parts.calibrators.flatMap((c) => c.fragments(facts)), ...(parts.extraFragments ?? [])];
  const sessionOpts = { intraOpThreads: options.threads, providers: options.providers };
  const calibrated = fragments.length
    ? await DecoderSession.create(compileDecoder(weights, { fragments, name: `${name}_calibrated` }), sessionOpts)
    : null;
  const plain = !calibrated || options.plainFastPath
    ? await DecoderSession.create(compileDecoder(weights, { name: `${name}_plain` }), sessionOpts)
    : null;
  return {
    name,
    config: weights.config,
    facts,
    tokenizer: parts.tokenizer,
    graphs: twoGraphs(calibrated, plain),
    vision: null,
    calibrators: new Map(parts.calibrators.map((c) => [c.id, c])),
  };
}

export async function loadEngineModel(resolved: ResolvedModel, options: EngineOptions, profile?: ModelProfile): Promise<EngineModel> {
  const weights = await loadDecoderWeights(resolved);
  return buildEngineModel({
    name: resolved.name,
    weights,
    tokenizer: await loadTokenizer(resolved, { vocabSize: weights.config.vocabSize }),
    profile: profile ?? loadModelProfile(resolved.name, resolved.dir),
    calibrators: CALIBRATORS,
    options,
  });
}
