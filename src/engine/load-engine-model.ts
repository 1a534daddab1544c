/**
 * Worker-side model loading: checkpoint → weight store (cached on disk) → graphs per calibrator set
 * → ORT sessions, plus the tokenizer. `buildEngineModel` is the in-memory variant for tests and
 * benchmarks: weights inline in each graph.
 */
import { compileDecoder, type DecoderGraphInfo } from '../../models/compiler/decoder-graph.js';
import type { HookFragment } from '../../models/compiler/hooks.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import type { DecoderCheckpoint } from '../../models/checkpoint/decoder-checkpoint.js';
import { decoderServedFromCheckpoint, decoderServedWeights } from '../../models/compiler/decoder-served-weights.js';
import { inlineWeights } from '../../models/onnx/weights.js';
import { openDecoderCheckpoint } from '../../models/load-decoder.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { loadProfile } from '../../models/profiles/profile.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import type { ResolvedModel } from '../../models/resolve.js';
import { CALIBRATORS } from '../../calibrators/index.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import type { EngineModel } from './engine-core.js';
import type { EngineOptions } from './engine-options.js';
import { DecoderGraphs, type GraphCompiler } from './decoder-graphs.js';
import { cachedGraph, defaultCompiledCacheDir, openWeightStore } from './graph-cache.js';
import type { LoadTimes } from './load-times.js';

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
}

/** An engine model whose graphs are a DecoderGraphs (the worker reads its provider and times). */
export type LoadedEngineModel = EngineModel & { graphs: DecoderGraphs };

async function assemble(parts: ModelParts, config: DecoderWeights['config'], compiler: GraphCompiler): Promise<LoadedEngineModel> {
  const { options } = parts;
  const graphs = await DecoderGraphs.create({
    name: parts.name,
    compiler,
    calibrators: parts.calibrators,
    facts: { name: parts.name, config, profile: parts.profile },
    extraFragments: parts.extraFragments,
    perSet: options.plainFastPath,
    maxGraphs: options.maxGraphs ?? 4,
    session: { intraOpThreads: options.threads, providers: options.providers },
  });
  return {
    name: parts.name,
    config,
    tokenizer: parts.tokenizer,
    graphs,
    calibrators: new Map(parts.calibrators.map((c) => [c.id, c])),
  };
}

/** Graphs with their weights inline (in memory: tests, benchmarks, small models). */
export function buildEngineModel(parts: EngineModelParts): Promise<LoadedEngineModel> {
  const weights = inlineWeights(decoderServedWeights(parts.weights), parts.options.weights ?? 'f32');
  const config = parts.weights.config;
  return assemble(parts, config, async (fragments, name) => {
    const started = performance.now();
    const graph = compileDecoder({ config, weights }, { fragments, name });
    return { graph, compileMs: performance.now() - started };
  });
}

export interface StoredModelParts extends ModelParts {
  checkpoint: DecoderCheckpoint;
  cacheDir?: string;
}

/**
 * Graphs over a weight store built from an opened checkpoint (cached on disk by content): what
 * serving uses. The checkpoint is read only when the store is not cached; it is not closed here.
 */
export async function buildStoredEngineModel(parts: StoredModelParts): Promise<{ model: LoadedEngineModel; times: LoadTimes }> {
  const { checkpoint } = parts;
  const format = parts.options.weights ?? 'f32';
  const store = await openWeightStore({
    cacheDir: parts.cacheDir ?? defaultCompiledCacheDir(),
    name: parts.name,
    part: 'decoder',
    format,
    files: checkpoint.files,
    served: async () => ({ weights: decoderServedFromCheckpoint(checkpoint), close: async () => {} }),
  });
  const config = checkpoint.config;
  const model = await assemble(parts, config, async (fragments, name, describe) => {
    const { graph, compileMs } = await cachedGraph<DecoderGraphInfo>(store, `decoder:ids:${describe}`, (weights) => compileDecoder({ config, weights }, { fragments, name }));
    return { graph, compileMs };
  });
  return { model, times: { ...store.timings, compileMs: model.graphs.times.compileMs, sessionMs: model.graphs.times.sessionMs } };
}

export async function loadEngineModel(resolved: ResolvedModel, options: EngineOptions, profile?: ModelProfile): Promise<{ model: LoadedEngineModel; times: LoadTimes }> {
  const checkpoint = await openDecoderCheckpoint(resolved);
  try {
    return await buildStoredEngineModel({
      name: resolved.name,
      checkpoint,
      tokenizer: await loadTokenizer(resolved, { vocabSize: checkpoint.config.vocabSize }),
      profile: profile ?? loadProfile(resolved.name, resolved.dir),
      calibrators: CALIBRATORS,
      options,
      cacheDir: options.compiledCacheDir,
    });
  } finally {
    await checkpoint.close();
  }
}
