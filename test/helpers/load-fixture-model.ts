/** Loads a shared test model's weights and tokenizer, and builds an in-process engine model. */
import { readFileSync } from 'node:fs';
import { parseLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadLlama2cTokenizer } from '../../models/tokenizers/llama2c-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { HookFragment } from '../../models/compiler/hooks.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import { buildEngineModel, type LoadedEngineModel } from '../../src/engine/load-engine-model.js';

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
