/**
 * Worker-side model loading: weights → compiled graphs → ORT sessions, plus the tokenizer. An LVLM
 * (LLaVA) also gets its vision tower compiled with the calibrators' vision taps, and its decoder
 * graphs take image features spliced in after the embedding gather.
 */
import { compileDecoder } from '../../models/compiler/decoder-graph.js';
import { compileVision } from '../../models/compiler/vision-graph.js';
import type { HookFragment } from '../../models/compiler/hooks.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadLlavaVision, type LlavaVision } from '../../models/checkpoint/llava-vision.js';
import { loadDecoderWeights } from '../../models/load-decoder.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import type { ResolvedModel } from '../../models/resolve.js';
import { isVisionLanguageModel, visionFacts } from '../../models/vision-model.js';
import { CALIBRATORS, loadModelProfile } from '../../calibrators/index.js';
import type { AnyCalibrator, ModelFacts } from '../../calibrators/calibrator.js';
import type { EngineModel } from './engine-core.js';
import type { EngineOptions } from './engine-options.js';
import { twoGraphs } from './decoder-graphs.js';
import { sessionEncoder } from './image-encoder.js';
import { DecoderSession } from './ort-session.js';
import { VisionSession } from './vision-session.js';

export interface EngineModelParts {
  name: string;
  weights: DecoderWeights;
  /** The vision side of an LVLM. */
  vision?: LlavaVision;
  tokenizer: Tokenizer;
  profile: ModelProfile;
  calibrators: readonly AnyCalibrator[];
  /** Extra fragments compiled into the calibrated graph (tests, benchmarks). */
  extraFragments?: readonly HookFragment[];
  options: Pick<EngineOptions, 'threads' | 'providers' | 'plainFastPath'>;
}

/** Compiles the calibrated graph (every calibrator's fragments) and, unless turned off, the plain one. */
export async function buildEngineModel(parts: EngineModelParts): Promise<EngineModel> {
  const { weights, name, options, vision } = parts;
  const facts: ModelFacts = {
    name,
    config: weights.config,
    profile: parts.profile,
    ...(vision ? { vision: visionFacts(vision.weights.config, vision.spec.imageTokenId) } : {}),
  };
  const fragments = [...parts.calibrators.flatMap((c) => c.fragments(facts)), ...(parts.extraFragments ?? [])];
  const sessionOpts = { intraOpThreads: options.threads, providers: options.providers };
  const imageSplice = vision !== undefined;
  const calibrated = fragments.length
    ? await DecoderSession.create(compileDecoder(weights, { fragments, imageSplice, name: `${name}_calibrated` }), sessionOpts)
    : null;
  const plain = !calibrated || options.plainFastPath
    ? await DecoderSession.create(compileDecoder(weights, { imageSplice, name: `${name}_plain` }), sessionOpts)
    : null;
  const visionSession = vision
    ? await VisionSession.create(compileVision(vision.weights, { taps: parts.calibrators.flatMap((c) => c.visionTaps?.(facts) ?? []), name: `${name}_vision` }), sessionOpts)
    : null;
  return {
    name,
    config: weights.config,
    facts,
    tokenizer: parts.tokenizer,
    graphs: twoGraphs(calibrated, plain),
    vision: visionSession ? sessionEncoder(visionSession) : null,
    calibrators: new Map(parts.calibrators.map((c) => [c.id, c])),
  };
}

export async function loadEngineModel(resolved: ResolvedModel, options: EngineOptions, profile?: ModelProfile): Promise<EngineModel> {
  const weights = await loadDecoderWeights(resolved);
  return buildEngineModel({
    name: resolved.name,
    weights,
    ...(isVisionLanguageModel(resolved) ? { vision: await loadLlavaVision(resolved.dir) } : {}),
    tokenizer: await loadTokenizer(resolved, { vocabSize: weights.config.vocabSize }),
    profile: profile ?? loadModelProfile(resolved.name, resolved.dir),
    calibrators: CALIBRATORS,
    options,
  });
}
