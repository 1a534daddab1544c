/** How single tokens are written in logprobs: their decoded text, or vLLM's `token_id:N`. */
import type { Tokenizer } from '../../../models/tokenizers/tokenizer.js';

export class TokenText {
  private readonly cache = new Map<number, string>();

  constructor(private readonly tokenizer: Tokenizer) {}

  /** The text one token decodes to on its own (leading spaces kept, as OpenAI's logprobs show them). */
  text(id: number): string {
    let t = this.cache.get(id);
    if (t === undefined) {
      t = this.tokenizer.decode([id]);
      this.cache.set(id, t);
    }
    return t;
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
