/**
 * Worker-side model loading: checkpoint → weight store (cached on disk) → graphs per calibrator set
 * → ORT sessions, plus the tokenizer. An LVLM (LLaVA) also gets its vision tower, compiled with the
 * calibrators' vision taps over a weight store of its own (the same mechanism, part `vision`), and
 * its decoder graphs take image features spliced in after the embedding gather.
 * `buildEngineModel` is the in-memory variant for tests and benchmarks: weights inline in each graph.
 */
import { compileDecoder, type DecoderGraphInfo } from '../../models/compiler/decoder-graph.js';
import { compileVision, type CompiledVision } from '../../models/compiler/vision-graph.js';
import type { VisionTapFragment } from '../../models/compiler/vision-hooks.js';
import { visionServedWeights } from '../../models/compiler/vision-served-weights.js';
import type { HookFragment } from '../../models/compiler/hooks.js';
import type { DecoderConfig, DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import type { DecoderCheckpoint } from '../../models/checkpoint/decoder-checkpoint.js';
import { loadLlavaVision, readLlavaVisionAssets, type LlavaVision, type LlavaVisionAssets } from '../../models/checkpoint/llava-vision.js';
import { decoderServedFromCheckpoint, decoderServedWeights } from '../../models/compiler/decoder-served-weights.js';
import { inlineWeights, servedFromMemory } from '../../models/onnx/weights.js';
import { openDecoderCheckpoint } from '../../models/load-decoder.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import type { ResolvedModel } from '../../models/resolve.js';
import { isVisionLanguageModel, visionFacts } from '../../models/vision-model.js';
import { CALIBRATORS, loadModelProfile } from '../../calibrators/index.js';
import type { AnyCalibrator, ModelFacts } from '../../calibrators/calibrator.js';
import type { EngineModel } from './engine-core.js';
import type { EngineOptions } from './engine-options.js';
import { DecoderGraphs, type GraphCompiler } from './decoder-graphs.js';
import { cachedGraph, defaultCompiledCacheDir, openWeightStore } from './graph-cache.js';
import { sessionEncoder, type ImageEncoder } from './image-encoder.js';
import type { LoadTimes } from './load-times.js';
import { VisionSession } from './vision-session.js';

type GraphOptions = Pick<EngineOptions, 'threads' | 'providers' | 'plainFastPath'> & Partial<Pick<EngineOptions, 'maxGraphs' | 'weights'>>;

interface ModelParts {
  name: string;
  tokenizer: Tokenizer;
  profile: ModelProfile;
  calibrators: readonly AnyCalibrator[];
  /** Extra fragments compiled into every calibrated graph (tests, benchmarks). */
  extraFragments?: readonly HookFragment[];
  options: GraphOptions;
}

export interface EngineModelParts extends ModelParts {
  weights: DecoderWeights;
  /** The vision side of an LVLM. */
  vision?: LlavaVision;
}

/** An engine model whose graphs are a DecoderGraphs (the worker reads its provider and times). */
export type LoadedEngineModel = EngineModel & { graphs: DecoderGraphs };

function factsOf(parts: ModelParts, config: DecoderConfig, vision: LlavaVisionAssets | undefined): ModelFacts {
  return {
    name: parts.name,
    config,
    profile: parts.profile,
    ...(vision ? { vision: visionFacts(vision.spec.config, vision.spec.imageTokenId) } : {}),
  };
}

const visionTaps = (parts: ModelParts, facts: ModelFacts): VisionTapFragment[] => parts.calibrators.flatMap((c) => c.visionTaps?.(facts) ?? []);

async function assemble(parts: ModelParts, facts: ModelFacts, compiler: GraphCompiler, vision: ImageEncoder | null): Promise<LoadedEngineModel> {
  const { options } = parts;
  const graphs = await DecoderGraphs.create({
    name: parts.name,
    compiler,
    calibrators: parts.calibrators,
    facts,
    extraFragments: parts.extraFragments,
    perSet: options.plainFastPath,
    maxGraphs: options.maxGraphs ?? 4,
    session: { intraOpThreads: options.threads, providers: options.providers },
  });
  return {
    name: parts.name,
    config: facts.config,
    facts,
    tokenizer: parts.tokenizer,
    graphs,
    vision,
    calibrators: new Map(parts.calibrators.map((c) => [c.id, c])),
  };
}

/** Graphs with their weights inline (in memory: tests, benchmarks, small models). */
export async function buildEngineModel(parts: EngineModelParts): Promise<LoadedEngineModel> {
  const format = parts.options.weights ?? 'f32';
  const weights = inlineWeights(decoderServedWeights(parts.weights), format);
  const config = parts.weights.config;
  const facts = factsOf(parts, config, parts.vision);
  const imageSplice = parts.vision !== undefined;
  const session = { intraOpThreads: parts.options.threads, providers: parts.options.providers };
  const vision = parts.vision
    ? sessionEncoder(await VisionSession.create(compileVision(parts.vision.weights, { taps: visionTaps(parts, facts), name: `${parts.name}_vision` }), session))
    : null;
  return assemble(parts, facts, async (fragments, name) => {
    const started = performance.now();
    const graph = compileDecoder({ config, weights }, { fragments, name, imageSplice });
    return { graph, compileMs: performance.now() - started };
  }, vision);
}

export interface StoredModelParts extends ModelParts {
  checkpoint: DecoderCheckpoint;
  /** An LVLM's configs (its tower's tensors are read from the checkpoint only when its store is built). */
  vision?: { assets: LlavaVisionAssets; dir: string };
  cacheDir?: string;
}

/**
 * Graphs over a weight store built from an opened checkpoint (cached on disk by content): what
 * serving uses. The checkpoint is read only when the store is not cached; it is not closed here.
 * An LVLM's tower gets a store of its own (f32: the tower is small beside its language model, and
 * its features feed every image token), from the same checkpoint files.
 */
export async function buildStoredEngineModel(parts: StoredModelParts): Promise<{ model: LoadedEngineModel; times: LoadTimes }> {
  const { checkpoint } = parts;
  const format = parts.options.weights ?? 'f32';
  const cacheDir = parts.cacheDir ?? defaultCompiledCacheDir();
  const store = await openWeightStore({
    cacheDir,
    name: parts.name,
    part: 'decoder',
    format,
    files: checkpoint.files,
    describe: JSON.stringify({ config: checkpoint.config, tied: checkpoint.tiedClassifier, qkvBias: checkpoint.hasQkvBias }),
    served: async () => ({ weights: decoderServedFromCheckpoint(checkpoint), close: async () => {} }),
  });
  const config = checkpoint.config;
  const facts = factsOf(parts, config, parts.vision?.assets);
  const imageSplice = parts.vision !== undefined;
  const times: LoadTimes = { ...store.timings, compileMs: 0, sessionMs: 0 };

  let vision: ImageEncoder | null = null;
  if (parts.vision) {
    const { assets, dir } = parts.vision;
    const visionStore = await openWeightStore({
      cacheDir,
      name: parts.name,
      part: 'vision',
      format: 'f32',
      files: checkpoint.files,
      describe: JSON.stringify(assets.spec),
      served: async () => ({ weights: servedFromMemory(visionServedWeights((await loadLlavaVision(dir)).weights)), close: async () => {} }),
    });
    const taps = visionTaps(parts, facts);
    const describe = JSON.stringify({ taps: taps.map((t) => `${t.owner}:${t.hook}`), config: assets.spec.config });
    const { graph, compileMs } = await cachedGraph<Omit<CompiledVision, 'bytes'>>(visionStore, `vision:${describe}`, (weights) =>
      compileVision({ config: assets.spec.config, weights }, { taps, name: `${parts.name}_vision` }));
    const started = performance.now();
    vision = sessionEncoder(await VisionSession.create(graph, { intraOpThreads: parts.options.threads, providers: parts.options.providers }));
    times.readMs += visionStore.timings.readMs;
    times.prepackMs += visionStore.timings.prepackMs;
    times.compileMs += compileMs;
    times.sessionMs += performance.now() - started;
  }

  const model = await assemble(parts, facts, async (fragments, name, describe) => {
    const { graph, compileMs } = await cachedGraph<DecoderGraphInfo>(store, `decoder:ids:${imageSplice ? 'splice:' : ''}${describe}`, (weights) =>
      compileDecoder({ config, weights }, { fragments, name, imageSplice }));
    return { graph, compileMs };
  }, vision);
  times.compileMs += model.graphs.times.compileMs;
  times.sessionMs += model.graphs.times.sessionMs;
  return { model, times };
}

export async function loadEngineModel(resolved: ResolvedModel, options: EngineOptions, profile?: ModelProfile): Promise<{ model: LoadedEngineModel; times: LoadTimes }> {
  const checkpoint = await openDecoderCheckpoint(resolved);
  try {
    return await buildStoredEngineModel({
      name: resolved.name,
      checkpoint,
      ...(isVisionLanguageModel(resolved) ? { vision: { assets: await readLlavaVisionAssets(resolved.dir), dir: resolved.dir } } : {}),
      tokenizer: await loadTokenizer(resolved, { vocabSize: checkpoint.config.vocabSize }),
      profile: profile ?? loadModelProfile(resolved.name, resolved.dir),
      calibrators: CALIBRATORS,
      options,
      cacheDir: options.compiledCacheDir,
    });
  } finally {
    await checkpoint.close();
  }
}
