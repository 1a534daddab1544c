/**
 * How tokens are written for clients: single tokens in logprobs (their decoded text, or vLLM's
 * `token_id:N`), and whole sequences for /detokenize. Control tokens are written as their bare piece:
 * llama2.c's vocabulary stores BOS as "\n<s>\n", where vLLM users (and HF tokenizers) show "<s>".
 */
import type { Tokenizer } from '../../../models/tokenizers/tokenizer.js';

/** A control token as templates and vLLM write it (the piece without surrounding whitespace), or null. */
export function controlText(tokenizer: Pick<Tokenizer, 'idToPiece'>, id: number | null): string | null {
  if (id === null) return null;
  const piece = tokenizer.idToPiece(id).trim();
  return piece.length ? piece : null;
}

/** Control tokens (BOS, the stop ids) whose stored piece is padded with whitespace, mapped to their bare text. */
function paddedControls(tokenizer: Tokenizer): Map<number, string> {
  const out = new Map<number, string>();
  for (const id of [tokenizer.bosId, ...tokenizer.stopIds]) {
    if (id === null) continue;
    const bare = controlText(tokenizer, id);
    if (bare !== null && bare !== tokenizer.idToPiece(id)) out.set(id, bare);
  }
  return out;
}

export class TokenText {
  private readonly cache = new Map<number, string>();
  private readonly controls: Map<number, string>;

  constructor(private readonly tokenizer: Tokenizer) {
    this.controls = paddedControls(tokenizer);
  }

  /** The text one token decodes to on its own (leading spaces kept, as OpenAI's logprobs show them). */
  text(id: number): string {
    let t = this.cache.get(id);
    if (t === undefined) {
      t = this.controls.get(id) ?? this.tokenizer.decode([id]);
      this.cache.set(id, t);
    }
    return t;
  }

  /**
   * A sequence as /detokenize returns it: decoded as a whole, control tokens included, padded ones
   * written bare. Text after a control token is still decoded in its context (llama2.c drops the
   * space that follows BOS).
   */
  sequence(ids: readonly number[]): string {
    if (this.controls.size === 0 || !ids.some((id) => this.controls.has(id))) return this.tokenizer.decode(ids);
    let out = '';
    let start = 0;
    for (let i = 0; i <= ids.length; i++) {
      const bare = i < ids.length ? this.controls.get(ids[i]!) : undefined;
      if (i < ids.length && bare === undefined) continue;
      if (i > start) {
        // The control token before the run is decoded as context, then its own text cut off again.
        const ctx = start > 0 ? [ids[start - 1]!] : [];
        out += this.tokenizer.decode([...ctx, ...ids.slice(start, i)]).slice(ctx.length ? this.tokenizer.decode(ctx).length : 0);
      }
      if (bare !== undefined) out += bare;
      start = i + 1;
    }
    return out;
  }

  label(id: number, asTokenIds: boolean): string {
    return asTokenIds ? `token_id:${id}` : this.text(id);
  }

  /**
   * The token's own bytes. A byte-fallback token (`<0xE6>`) is one raw byte, which decoding on its
   * own would turn into U+FFFD; clients join these bytes to rebuild characters split over tokens.
   */
  bytes(id: number): number[] {
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(this.tokenizer.idToPiece(id));
    return byte ? [parseInt(byte[1]!, 16)] : [...Buffer.from(this.text(id), 'utf8')];
  }
}

/** -Infinity has no JSON form; OpenAI and vLLM write -9999 instead. */
export function jsonLogprob(logprob: number): number {
  return Math.max(logprob, -9999);
}
