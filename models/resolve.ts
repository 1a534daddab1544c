/**
 * `--model NAME|PATH` → the files of one model. A PATH is used as it is; a NAME is looked up as
 * `<ATTUNE_MODELS_DIR>/<NAME>/`, then `<cache>/<NAME>/`, and a catalogue model missing from both is
 * downloaded into the cache.
 */
import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { CATALOG, catalogFileName, DEFAULT_MODEL, downloadCatalogModel } from './hub.js';

export type ResolvedModel =
  | {
      format: 'llama2c';
      name: string;
      dir: string;
      checkpoint: string;
      tokenizer: string;
    }
  | {
      /** An HF layout: `config.json` plus safetensors, and a tokenizer file in the same directory. */
      format: 'hf';
      name: string;
      dir: string;
    };

export interface ResolveOptions {
  /** Default: ATTUNE_MODELS_DIR. */
  modelsDir?: string;
  /** Default: ATTUNE_CACHE_DIR, else ~/.cache/attune/models. */
  cacheDir?: string;
  /** Replaces catalogue base URLs. Default: ATTUNE_HUB_URL. */
  hubUrl?: string;
  /** Set false to fail instead of downloading. */
  download?: boolean;
  fetch?: typeof fetch;
  /** Where the defaults above are read from; process.env unless given. */
  env?: Readonly<Record<string, string | undefined>>;
}

export function defaultCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env.ATTUNE_CACHE_DIR || join(homedir(), '.cache', 'attune', 'models');
}

export async function resolveModel(spec: string = DEFAULT_MODEL, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const env = opts.env ?? process.env;
  if (looksLikePath(spec)) {
    const path = resolve(spec.startsWith('~/') ? join(homedir(), spec.slice(2)) : spec);
    if (!existsSync(path)) throw new Error(`model path ${path} does not exist`);
    return describePath(path);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(spec)) throw new Error(`model name ${JSON.stringify(spec)} is not a valid name`);

  const modelsDir = opts.modelsDir ?? env.ATTUNE_MODELS_DIR;
  const cacheDir = opts.cacheDir ?? defaultCacheDir(env);
  const searched: string[] = [];
  if (modelsDir) {
    const dir = join(resolve(modelsDir), spec);
    // A models directory that does not exist at all is almost always a typo: say so by name.
    searched.push(isDir(resolve(modelsDir)) ? dir : `${dir} (the models directory ${resolve(modelsDir)} does not exist)`);
    if (isDir(dir)) return describeDir(dir, spec);
  }
  const cached = join(resolve(cacheDir), spec);
  searched.push(cached);
  const entry = CATALOG[spec];
  if (entry) {
    const present = new Set(isDir(cached) ? readdirSync(cached) : []);
    const missing = entry.files.filter((f) => !present.has(catalogFileName(f)));
    if (missing.length > 0) {
      if (opts.download === false) throw new Error(`model ${spec} is not in ${searched.join(' or ')}, and downloads are off`);
      const createdDirs = missingAncestors(cached);
      try {
        await downloadCatalogModel(entry, cached, present, { baseUrl: opts.hubUrl ?? (env.ATTUNE_HUB_URL || undefined), fetch: opts.fetch });
      } catch (e) {
        // A failed download must not leave empty folders behind, which would look like a broken model.
        removeIfEmpty(createdDirs);
        // Same error class (callers tell an unreachable hub from a bad checksum), with where we looked.
        if (e instanceof Error) e.message = `model ${spec} is not in ${searched.join(' or ')}, and downloading it failed: ${e.message}`;
        throw e;
      }
    }
    return describeDir(cached, spec);
  }
  if (isDir(cached)) return describeDir(cached, spec);
  if (isDir(spec)) return describeDir(resolve(spec), spec);
  throw new Error(
    `model ${spec} not found (looked in ${searched.join(', ')}); known downloadable models: ${Object.keys(CATALOG).join(', ')}. ` +
      'Pass a path, or set ATTUNE_MODELS_DIR to a directory holding <name>/.',
  );
}

/** `dir` and those of its ancestors that do not exist yet, deepest first. */
function missingAncestors(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; !existsSync(d) && dirname(d) !== d; d = dirname(d)) out.push(d);
  return out;
}

function removeIfEmpty(dirs: readonly string[]): void {
  for (const d of dirs) {
    try {
      if (isDir(d) && readdirSync(d).length === 0) rmdirSync(d);
    } catch {
      return;
    }
  }
}

function looksLikePath(spec: string): boolean {
  return isAbsolute(spec) || spec.includes('/') || spec.includes('\\') || spec.startsWith('.') || spec.startsWith('~') || /\.bin$/i.test(spec);
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/** A file is a llama2.c checkpoint; a directory is whatever it holds. */
export function describePath(path: string): ResolvedModel {
  if (isDir(path)) return describeDir(path, basename(path));
  if (!/\.bin$/i.test(path)) throw new Error(`${path}: expected a llama2.c .bin checkpoint or a model directory`);
  const dir = dirname(path);
  return { format: 'llama2c', name: basename(path).replace(/\.bin$/i, ''), dir, checkpoint: path, tokenizer: findLlama2cTokenizer(dir) };
}

/**
 * config.json means HF (its tokenizer may still be a llama2.c file, see load-tokenizer.ts).
 * Otherwise a llama2.c checkpoint: `<name>.bin`, or the only .bin that is not a tokenizer.
 */
export function describeDir(dir: string, name: string): ResolvedModel {
  const files = readdirSync(dir);
  if (files.includes('config.json')) return { format: 'hf', name, dir };
  const bins = files.filter((f) => /\.bin$/i.test(f) && !isTokenizerFile(f));
  const checkpoint = bins.includes(`${name}.bin`) ? `${name}.bin` : bins.length === 1 ? bins[0] : undefined;
  if (!checkpoint) {
    throw new Error(
      bins.length === 0
        ? `${dir}: no config.json and no llama2.c .bin checkpoint`
        : `${dir}: several checkpoints (${bins.join(', ')}); pass the one to use as a path`,
    );
  }
  return { format: 'llama2c', name, dir, checkpoint: join(dir, checkpoint), tokenizer: findLlama2cTokenizer(dir) };
}

function isTokenizerFile(f: string): boolean {
  return /^tok.*\.bin$/i.test(f);
}

/** `tokenizer.bin` if present, else the only `tok*.bin`. */
export function findLlama2cTokenizer(dir: string): string {
  const toks = readdirSync(dir).filter(isTokenizerFile).sort();
  const pick = toks.includes('tokenizer.bin') ? 'tokenizer.bin' : toks.length === 1 ? toks[0] : undefined;
  if (!pick) {
    throw new Error(toks.length === 0 ? `${dir}: no llama2.c tokenizer (tok*.bin)` : `${dir}: several tokenizers (${toks.join(', ')})`);
  }
  return join(dir, pick);
}
