/**
 * Which model the load tests serve, found the way `attune serve` finds it. One addition: when
 * ATTUNE_MODELS_DIR is unset and the checkout sits beside the shared models directory (as in CI and
 * on the dev boxes), that directory is used, so `npm run load` works without setup or a download.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL } from '../models/hub.js';
import { resolveModel, type ResolvedModel } from '../models/resolve.js';

export const LOAD_MODEL = process.env.LOAD_MODEL ?? DEFAULT_MODEL;

const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

export function loadModelsDir(): string | undefined {
  if (process.env.ATTUNE_MODELS_DIR) return resolve(process.env.ATTUNE_MODELS_DIR);
  const beside = resolve(repoRoot, '..', 'shared', 'models');
  return existsSync(join(beside, LOAD_MODEL)) ? beside : undefined;
}

/** The same flags a user would give `attune serve` to get this model. */
export function modelFlags(): string[] {
  const dir = loadModelsDir();
  return ['--model', LOAD_MODEL, ...(dir ? ['--models-dir', dir] : [])];
}

export function resolveLoadModel(): Promise<ResolvedModel> {
  const dir = loadModelsDir();
  return resolveModel(LOAD_MODEL, dir ? { modelsDir: dir } : {});
}
