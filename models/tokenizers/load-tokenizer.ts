/**
 * Picks and loads a model's tokenizer: `tokenizer.json` → HF; otherwise a llama2.c `tok*.bin`
 * (named by tokenizer_config.json's `tokenizer_file` when present), whose size comes from the model.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { readLlama2cHeader } from '../checkpoint/llama2c-header.js';
import type { ResolvedModel } from '../resolve.js';
import { describeDir, findLlama2cTokenizer } from '../resolve.js';
import { chatTemplateFromConfig } from './chat-template.js';
import { loadHfTokenizer } from './hf-tokenizer.js';
import { loadLlama2cTokenizer } from './llama2c-tokenizer.js';
import type { Tokenizer } from './tokenizer.js';

export interface Llama2cTokenizerPaths {
  tokenizer: string;
  /** Read for its vocabulary size when `vocabSize` is not given. */
  checkpoint?: string;
}

export interface LoadTokenizerOptions {
  /** The model's vocabulary size; read from config.json or the checkpoint header when absent. */
  vocabSize?: number;
}

/** `source`: a model directory, llama2.c paths, or a resolved model. */
export async function loadTokenizer(
  source: string | Llama2cTokenizerPaths | ResolvedModel,
  opts: LoadTokenizerOptions = {},
): Promise<Tokenizer> {
  if (typeof source === 'string') return loadFromDir(source, opts);
  if ('format' in source && source.format === 'hf') return loadFromDir(source.dir, opts);
  const paths = source as Llama2cTokenizerPaths;
  const vocabSize = opts.vocabSize ?? (paths.checkpoint ? (await readLlama2cHeader(paths.checkpoint)).vocabSize : undefined);
  if (vocabSize === undefined) throw new Error(`${paths.tokenizer}: a llama2.c tokenizer needs the model's vocabulary size`);
  return loadLlama2cTokenizer(paths.tokenizer, vocabSize);
}

async function loadFromDir(dir: string, opts: LoadTokenizerOptions): Promise<Tokenizer> {
  const modelConfig = await readJsonIfPresent(join(dir, 'config.json'));
  const textConfig = (isRecord(modelConfig?.text_config) ? modelConfig.text_config : modelConfig) ?? {};
  const vocabSize = opts.vocabSize ?? positiveInt(textConfig.vocab_size);

  if (existsSync(join(dir, 'tokenizer.json'))) {
    const generation = await readJsonIfPresent(join(dir, 'generation_config.json'));
    // Chat models often stop on more than the tokenizer's eos_token (e.g. Llama 3's <|eot_id|>).
    const extraStopIds = [generation?.eos_token_id, textConfig.eos_token_id, modelConfig?.eos_token_id].flatMap(tokenIdList);
    return loadHfTokenizer(dir, { vocabSize, extraStopIds });
  }

  const tokConfig = await readJsonIfPresent(join(dir, 'tokenizer_config.json'));
  const named = typeof tokConfig?.tokenizer_file === 'string' ? tokConfig.tokenizer_file : undefined;
  if (named && /[/\\]/.test(named)) throw new Error(`${dir}/tokenizer_config.json: tokenizer_file must be a plain file name`);
  const tokenizer = named ? join(dir, named) : findLlama2cTokenizer(dir);
  if (vocabSize !== undefined) return loadLlama2cTokenizer(tokenizer, vocabSize);
  const model = modelConfig ? undefined : describeDir(dir, basename(dir));
  if (model?.format !== 'llama2c') {
    throw new Error(`${dir}: cannot tell the llama2.c tokenizer's vocabulary size (config.json has no vocab_size)`);
  }
  return loadLlama2cTokenizer(tokenizer, (await readLlama2cHeader(model.checkpoint)).vocabSize);
}

async function readJsonIfPresent(path: string): Promise<Record<string, unknown> | undefined> {
  if (!existsSync(path)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isRecord(v)) throw new Error(`${path}: not a JSON object`);
  return v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

function tokenIdList(v: unknown): number[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

/** The chat template a model directory ships: `chat_template.jinja`, else tokenizer_config.json's. */
export async function loadChatTemplateSource(dir: string): Promise<string | null> {
  const file = join(dir, 'chat_template.jinja');
  if (existsSync(file)) return readFile(file, 'utf8');
  const config = await readJsonIfPresent(join(dir, 'tokenizer_config.json'));
  if (!config) return null;
  return chatTemplateFromConfig(config);
}
