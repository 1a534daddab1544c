/**
 * HF `tokenizer.json` + `tokenizer_config.json`, through @huggingface/tokenizers, behind the
 * project's Tokenizer interface.
 *
 * BOS is ours to add, never the library's: we always encode with `add_special_tokens: false` and
 * prepend `bosId` when asked, so a prompt never gets two BOS tokens (once from the post-processor,
 * once from the caller) and never gets the EOS some post-processors append.
 */
import { Tokenizer as LibTokenizer } from '@huggingface/tokenizers';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tokenizer } from './tokenizer.js';

export interface HfTokenizerOptions {
  /** The model's vocabulary size (config.json), which may exceed the tokenizer's (padded embeddings). */
  vocabSize?: number;
  /** More stop ids, e.g. config.json's `eos_token_id` list. */
  extraStopIds?: readonly number[];
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly stopIds: readonly number[];

  private constructor(
    private readonly lib: LibTokenizer,
    bosId: number | null,
    stopIds: number[],
    vocabSize: number,
  ) {
    this.bosId = bosId;
    this.stopIds = stopIds;
    this.vocabSize = vocabSize;
  }

  /** `tokenizerJson` and `tokenizerConfig` are the parsed files; the config may be empty. */
  static create(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}, opts: HfTokenizerOptions = {}): HfTokenizer {
    let lib: LibTokenizer;
    try {
      lib = new LibTokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new Error(`tokenizer.json: cannot build the tokenizer: ${(e as Error).message}`, { cause: e });
    }
    const idOf = (field: string): number | null => {
      const token = tokenContent(tokenizerConfig[field]);
      if (token === null) return null;
      const id = lib.token_to_id(token);
      if (id === undefined) throw new Error(`tokenizer_config.json: ${field} ${JSON.stringify(token)} is not in the vocabulary`);
      return id;
    };
    const addBos = tokenizerConfig.add_bos_token;
    // Without add_bos_token, transformers adds whatever the post-processor adds (Llama 3 adds BOS, GPT-2 adds nothing).
    const bosId = addBos === false ? null : addBos === true ? idOf('bos_token') : probeLeadingSpecial(lib);
    const eos = idOf('eos_token');
    const stopIds = [...new Set([...(eos === null ? [] : [eos]), ...(opts.extraStopIds ?? [])])];
    let maxId = -1;
    for (const id of lib.get_vocab(true).values()) maxId = Math.max(maxId, id);
    return new HfTokenizer(lib, bosId, stopIds, Math.max(opts.vocabSize ?? 0, maxId + 1));
  }

  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    const ids = text.length > 0 ? this.lib.encode(text, { add_special_tokens: false }).ids : [];
    return opts.addBos && this.bosId !== null ? [this.bosId, ...ids] : ids;
  }

  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    for (const id of ids) this.checkId(id);
    // Padded ids have no piece and would reach the decoder as undefined; the library also rejects [].
    const known = ids.filter((id) => this.lib.id_to_token(id) !== undefined);
    if (known.length === 0) return '';
    return this.lib.decode(known, { skip_special_tokens: opts.skipSpecial ?? false });
  }

  /** Ids in the model's padded range that the tokenizer never produces map to ''. */
  idToPiece(id: number): string {
    this.checkId(id);
    return this.lib.id_to_token(id) ?? '';
  }

  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }
}

/** tokenizer_config.json writes special tokens either as a string or as an AddedToken object. */
export function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return null;
}

function probeLeadingSpecial(lib: LibTokenizer): number | null {
  const probe = 'a';
  const plain = lib.encode(probe, { add_special_tokens: false }).ids;
  const full = lib.encode(probe, { add_special_tokens: true }).ids;
  const extra = full.length - plain.length;
  if (extra <= 0 || full[0] === plain[0]) return null;
  return full[0] ?? null;
}

export async function loadHfTokenizer(dir: string, opts: HfTokenizerOptions = {}): Promise<HfTokenizer> {
  const json = await readJson(join(dir, 'tokenizer.json'));
  const config = await readJson(join(dir, 'tokenizer_config.json')).catch((e: NodeJS.ErrnoException) => {
    if (e.cause && (e.cause as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  });
  try {
    return HfTokenizer.create(json, config, opts);
  } catch (e) {
    throw new Error(`${dir}: ${(e as Error).message}`, { cause: e });
  }
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
}
