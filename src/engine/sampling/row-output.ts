/**
 * Turns one row's generated tokens into released text and a finish decision: stop token ids, stop
 * strings, max_tokens. Checks per token, in vLLM V1's order (`check_stop` and the detokenizer):
 *   0. before minTokens tokens have been generated, no stop token ends the row, and no stop string
 *      can end within the text of the first minTokens tokens (vLLM's min_tokens);
 *   1. a stop token id (the model's stop ids unless ignoreEos, plus the request's stopTokenIds) ends
 *      the row; its text is left out unless includeStopStrInOutput (with skipSpecial, EOS has none).
 *      `stoppedBy` is the id for a request's stop_token_ids and null for the model's own EOS, as
 *      vLLM's stop_reason;
 *   2. the token's text goes through the stop-string matcher; a match ends the row ('stop', the
 *      string), truncating the text before it, or after it with includeStopStrInOutput; a match takes
 *      precedence over a stop token and over max_tokens reached on the same token, as in vLLM;
 *   3. maxTokens generated tokens (stop tokens included) end the row with 'length'.
 * When a row ends, everything still held back (stop-string candidates, complete characters) comes out
 * in that same append's text; an incomplete trailing character is dropped.
 */
import type { Tokenizer } from '../../../models/tokenizers/tokenizer.js';
import type { SamplingParams } from '../types.js';
import { type DetokenizerOptions, IncrementalDetokenizer } from './detokenizer.js';
import { StopStringMatcher } from './stop-strings.js';

export type RowOutputParams = Pick<SamplingParams, 'maxTokens' | 'stopTokenIds' | 'stopStrings' | 'ignoreEos' | 'includeStopStrInOutput' | 'minTokens'>;

export interface RowFinish {
  reason: 'stop' | 'length';
  /** The stop string or stop token id that ended the row; null for 'length'. */
  stoppedBy: string | number | null;
}

export interface RowAppendResult {
  /** Text released by this token (may be ''). */
  text: string;
  /** Non-null on the token that ends the row; no further tokens may be appended. */
  finished: RowFinish | null;
}

export class RowOutput {
  private readonly stopIds: ReadonlySet<number>;
  /** The request's own stop_token_ids: these name themselves in stoppedBy; the model's EOS does not. */
  private readonly requestStopIds: ReadonlySet<number>;
  private readonly maxTokens: number;
  private readonly minTokens: number;
  private readonly includeStop: boolean;
  private readonly detokenizer: IncrementalDetokenizer;
  private readonly matcher: StopStringMatcher;
  private generated = 0;
  private finishState: RowFinish | null = null;
  private closed = false;

  constructor(tokenizer: Pick<Tokenizer, 'decode' | 'stopIds'>, params: RowOutputParams, promptIds: readonly number[], opts: DetokenizerOptions = {}) {
    this.stopIds = new Set(params.ignoreEos ? params.stopTokenIds : [...tokenizer.stopIds, ...params.stopTokenIds]);
    const eos = new Set(params.ignoreEos ? [] : tokenizer.stopIds);
    this.requestStopIds = new Set(params.stopTokenIds.filter((id) => !eos.has(id)));
    this.maxTokens = params.maxTokens;
    this.minTokens = params.minTokens ?? 0;
    this.includeStop = params.includeStopStrInOutput;
    this.detokenizer = new IncrementalDetokenizer(tokenizer, promptIds, opts);
    this.matcher = new StopStringMatcher(params.stopStrings, params.includeStopStrInOutput);
  }

  /** How the row ended, once it has. */
  get finished(): RowFinish | null {
    return this.finishState;
  }

  /** Generated tokens appended so far. */
  get tokenCount(): number {
    return this.generated;
  }

  append(tokenId: number): RowAppendResult {
    if (this.closed) throw new Error('RowOutput: append after the row ended');
    this.generated++;
    const isStopToken = this.stopIds.has(tokenId) && this.generated >= this.minTokens;
    const chunk = !isStopToken || this.includeStop ? this.detokenizer.append(tokenId) : '';
    const scan = this.matcher.push(chunk, this.stopStringsLive);
    if (scan.matched !== null) return this.end(scan.text, { reason: 'stop', stoppedBy: scan.matched });
    if (isStopToken) return this.drainAndEnd(scan.text, { reason: 'stop', stoppedBy: this.requestStopIds.has(tokenId) ? tokenId : null });
    if (this.generated >= this.maxTokens) return this.drainAndEnd(scan.text, { reason: 'length', stoppedBy: null });
    return { text: scan.text, finished: null };
  }

  /**
   * Releases held-back text when the row ends for a reason this class does not see (abort, timeout,
   * context length). Returns '' once the row has ended. Does not set `finished`.
   */
  flush(): string {
    if (this.closed) return '';
    this.closed = true;
    return this.drain().text;
  }

  private drainAndEnd(text: string, finish: RowFinish): RowAppendResult {
    const tail = this.drain();
    return this.end(text + tail.text, tail.matched !== null ? { reason: 'stop', stoppedBy: tail.matched } : finish);
  }

  /** Stop strings may end only in text of tokens after the first minTokens (vLLM's min_tokens). */
  private get stopStringsLive(): boolean {
    return this.generated > this.minTokens;
  }

  /** Pushes the detokenizer's last complete characters through the matcher, then empties the matcher. */
  private drain(): { text: string; matched: string | null } {
    const scan = this.matcher.push(this.detokenizer.finish(), this.stopStringsLive);
    if (scan.matched !== null) return scan;
    return { text: scan.text + this.matcher.flush(), matched: null };
  }

  private end(text: string, finish: RowFinish): RowAppendResult {
    this.closed = true;
    this.finishState = finish;
    return { text, finished: finish };
  }
}
