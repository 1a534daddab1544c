/** Loads a shared test model's weights and tokenizer, and builds an in-process engine model (inline or over a weight store). */
import { readFileSync } from 'node:fs';
import { openLlama2cCheckpoint, parseLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadLlama2cTokenizer } from '../../models/tokenizers/llama2c-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { HookFragment } from '../../models/compiler/hooks.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import { buildEngineModel, buildStoredEngineModel, type LoadedEngineModel } from '../../src/engine/load-engine-model.js';
import type { LoadTimes } from '../../src/engine/load-times.js';
import type { WeightFormat } from '../../models/onnx/weight-format.js';

export interface FixtureModel {
  weights: DecoderWeights;
  tokenizer: Tokenizer;
}

export async function loadLlama2cFixture(paths: { checkpoint: string; tokenizer: string }): Promise<FixtureModel> {
  const weights = parseLlama2cCheckpoint(readFileSync(paths.checkpoint));
  return { weights, tokenizer: await loadLlama2cTokenizer(paths.tokenizer, weights.config.vocabSize) };
}

export interface FixtureEngineOptions {
  calibrators?: readonly AnyCalibrator[];
  extraFragments?: readonly HookFragment[];
  plainFastPath?: boolean;
  profile?: ModelProfile;
  name?: string;
}

export function fixtureEngineModel(m: FixtureModel, opts: FixtureEngineOptions = {}): Promise<LoadedEngineModel> {
  return buildEngineModel({
    name: opts.name ?? 'fixture',
    weights: m.weights,
    tokenizer: m.tokenizer,
    profile: opts.profile ?? {},
    calibrators: opts.calibrators ?? [],
    extraFragments: opts.extraFragments,
    options: { threads: 1, providers: [], plainFastPath: opts.plainFastPath ?? true },
  });
}

export interface StoredEngineOptions extends FixtureEngineOptions {
  weights?: WeightFormat;
  maxGraphs?: number;
  threads?: number;
}

/**
 * The serving path: a llama2.c file on disk → a weight store in `cacheDir` → graphs over it
 * (external data, memory-mapped, pre-packed weights from the store).
 */
export async function storedEngineModel(checkpointPath: string, tokenizer: Tokenizer, cacheDir: string, opts: StoredEngineOptions = {}): Promise<{ model: LoadedEngineModel; times: LoadTimes }> {
  const checkpoint = await openLlama2cCheckpoint(checkpointPath);
  try {
    return await buildStoredEngineModel({
      name: opts.name ?? 'fixture',
      checkpoint,
      tokenizer,
      profile: opts.profile ?? {},
      calibrators: opts.calibrators ?? [],
      extraFragments: opts.extraFragments,
      options: { threads: opts.threads ?? 1, providers: [], plainFastPath: opts.plainFastPath ?? true, weights: opts.weights ?? 'f32', maxGraphs: opts.maxGraphs },
      cacheDir,
    });
  } finally {
    await checkpoint.close();
  }
}
