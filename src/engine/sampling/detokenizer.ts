/**
 * Streaming detokenization over `Tokenizer.decode`, with vLLM's prefix/read offsets: the new text of a
 * step is decode(ids[prefix:]) minus decode(ids[prefix:read]). Decoding a short window of context
 * rather than single tokens is what makes tokenizers whose rendering of a token depends on its
 * predecessor come out right (SentencePiece dropping the first token's leading space; llama2.c
 * stripping the space after BOS): the context token is decoded both times, so its effect cancels.
 *
 * Incomplete UTF-8 (a multi-byte character split over byte-fallback or byte-level tokens) decodes to a
 * trailing U+FFFD run; that run is held back until later tokens complete it, while the complete text
 * before it is released at once (vLLM holds back the whole step). Offsets only advance when the window
 * decodes without a trailing U+FFFD, so a window never starts inside a character.
 */
import type { Tokenizer } from '../../../models/tokenizers/tokenizer.js';

export interface DetokenizerOptions {
  /** Drop control tokens such as BOS/EOS from the text (vLLM's skip_special_tokens, default true). */
  skipSpecial?: boolean;
  /** Prompt tokens decoded as context before the first generated token (vLLM uses 5). */
  promptContext?: number;
}

const REPLACEMENT_CHAR = 0xfffd;
// Tokens before the window are never decoded again; dropping them bounds memory on long generations.
const COMPACT_AFTER = 256;

/** Length of `text` without its trailing U+FFFD run. */
function completeLength(text: string): number {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === REPLACEMENT_CHAR) end--;
  return end;
}

export class IncrementalDetokenizer {
  private ids: number[];
  private prefixOffset = 0;
  private readOffset: number;
  /** decode(ids[prefixOffset:readOffset]): cached, it only changes when the offsets move. */
  private prefixText: string;
  /** Characters released beyond prefixText while the window still ends in an incomplete character. */
  private partial = 0;
  private readonly skipSpecial: boolean;

  constructor(
    private readonly tokenizer: Pick<Tokenizer, 'decode'>,
    promptIds: readonly number[],
    opts: DetokenizerOptions = {},
  ) {
    this.skipSpecial = opts.skipSpecial ?? true;
    const context = opts.promptContext ?? 5;
    this.ids = promptIds.slice(Math.max(0, promptIds.length - context));
    this.readOffset = this.ids.length;
    this.prefixText = this.decode(0, this.readOffset);
  }

  /** Appends one token and returns the text it releases (often '', never a partial character). */
  append(tokenId: number): string {
    this.ids.push(tokenId);
    const text = this.decode(this.prefixOffset, this.ids.length);
    const released = this.prefixText.length + this.partial;
    const complete = completeLength(text);
    if (complete < text.length) {
      if (complete <= released) return '';
      this.partial += complete - released;
      return text.slice(released, complete);
    }
    // No growth: e.g. a skipped special token. Keep the window so the next token is decoded after it.
    if (text.length <= released) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.prefixText = this.decode(this.prefixOffset, this.readOffset);
    this.partial = 0;
    if (this.prefixOffset > COMPACT_AFTER) this.compact();
    return text.slice(released);
  }

  /**
   * Text still unreleased when the generation ends: the complete characters only. A character whose
   * bytes never completed is dropped rather than rendered as U+FFFD, as vLLM's output text does.
   */
  finish(): string {
    const text = this.decode(this.prefixOffset, this.ids.length);
    const released = this.prefixText.length + this.partial;
    const complete = completeLength(text);
    if (complete <= released) return '';
    this.partial += complete - released;
    return text.slice(released, complete);
  }

  private decode(from: number, to: number): string {
    return this.tokenizer.decode(this.ids.slice(from, to), { skipSpecial: this.skipSpecial });
  }

  private compact(): void {
    this.ids = this.ids.slice(this.prefixOffset);
    this.readOffset -= this.prefixOffset;
    this.prefixOffset = 0;
  }
}
