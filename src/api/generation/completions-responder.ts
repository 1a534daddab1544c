/**
 * `/v1/completions` bodies and chunks, with OpenAI's legacy logprobs format (`tokens`,
 * `token_logprobs`, `top_logprobs`, `text_offset`). With `echo`, a choice's text and logprobs start
 * with its prompt; prompt logprobs come from the engine's `prompt` event, whose first entry is null
 * (nothing predicts the first token). That event also fills vLLM's `prompt_logprobs` on each choice.
 */
import type { TokenLogprobs } from '../../engine/types.js';
import { IncrementalDetokenizer } from '../../engine/sampling/detokenizer.js';
import type { Tokenizer } from '../../../models/tokenizers/tokenizer.js';
import { BaseResponder, topLevelCalibration, type ResponderOptions } from './responder.js';
import type { OutputEvent } from './run.js';
import { jsonLogprob, type TokenText } from './token-text.js';
import { promptLogprobs, type PromptLogprobs } from './prompt-logprobs.js';

export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export interface CompletionChoiceSource {
  promptIds: readonly number[];
  promptText: string;
}

export interface CompletionsOptions extends ResponderOptions {
  sources: readonly CompletionChoiceSource[];
  echo: boolean;
  /** null: no logprobs. */
  logprobs: number | null;
  /** vLLM's prompt_logprobs (alternatives per prompt token) on each choice; null: not asked for. */
  promptLogprobs: number | null;
  tokensAsIds: boolean;
  tokenText: TokenText;
  /** Decodes tokens in context, so text_offset indexes the text actually returned. */
  tokenizer: Pick<Tokenizer, 'decode'>;
}

interface ChoiceAcc {
  text: string;
  logprobs: LegacyLogprobs | null;
  promptLogprobs: PromptLogprobs | null;
  /** Characters so far, for text_offset. */
  offset: number;
  /** The choice's tokens decoded as its text is: context-dependent spaces, special tokens skipped. */
  detokenizer: IncrementalDetokenizer | null;
}

export class CompletionsResponder extends BaseResponder {
  private readonly acc: ChoiceAcc[];
  /** Streaming with return_token_ids: whether a choice's prompt ids went out (in its first chunk). */
  private readonly promptIdsSent: boolean[];

  constructor(private readonly o: CompletionsOptions) {
    super(o);
    // With echo the offsets run over prompt + completion; without, over the completion, whose first
    // token still needs the prompt as context (llama2.c drops the space after BOS, for one).
    this.acc = o.sources.map((s) => ({
      text: '',
      logprobs: o.logprobs === null ? null : emptyLogprobs(),
      promptLogprobs: null,
      offset: 0,
      detokenizer: o.logprobs === null ? null : new IncrementalDetokenizer(o.tokenizer, o.echo ? [] : s.promptIds),
    }));
    this.promptIdsSent = o.sources.map(() => false);
    // Echo without logprobs has no prompt event to wait for: the prompt text leads the choice at once.
    if (o.echo && o.logprobs === null && !o.streaming) o.sources.forEach((s, i) => (this.acc[i]!.text = s.promptText));
  }

  openChunks(): unknown[] {
    if (!this.o.echo || this.o.logprobs !== null) return [];
    return this.o.sources.map((s, i) => this.chunk(i, s.promptText, null));
  }

  onEvent(index: number, event: OutputEvent): unknown[] {
    switch (event.type) {
      case 'prompt': {
        const source = this.o.sources[index]!;
        if (this.o.promptLogprobs !== null) {
          this.acc[index]!.promptLogprobs = promptLogprobs(source.promptIds, event.logprobs, this.o.promptLogprobs, this.o.tokenText, this.o.tokensAsIds);
        }
        if (!this.o.echo || this.o.logprobs === null) return [];
        const lp = this.legacy(index, source.promptIds, event.logprobs);
        return this.emit(index, source.promptText, lp);
      }
      case 'tokens': {
        const lp = event.logprobs && this.o.logprobs !== null ? this.legacy(index, event.tokenIds, event.logprobs) : null;
        const ids = this.tokenIdsDelta(index, event.tokenIds);
        if (!event.text && !lp && !ids.token_ids?.length) return [];
        return this.emit(index, event.text, lp, ids);
      }
      case 'finish': {
        const end = this.end(index, event);
        if (!this.o.streaming) return [];
        return [
          {
            ...this.envelope('text_completion'),
            choices: [{ index, text: '', logprobs: null, finish_reason: end.finish_reason, stop_reason: end.stop_reason }],
            ...this.calibrationField(end.calibration),
          },
        ];
      }
    }
  }

  usageChunk(): unknown {
    return { ...this.envelope('text_completion'), choices: [], usage: this.usage() };
  }

  final(): unknown {
    return {
      ...this.envelope('text_completion'),
      choices: this.acc.map((a, index) => ({
        index,
        text: a.text,
        logprobs: a.logprobs,
        finish_reason: this.ends[index]?.finish_reason ?? null,
        stop_reason: this.ends[index]?.stop_reason ?? null,
        ...(this.o.returnTokenIds ? { prompt_token_ids: [...this.o.sources[index]!.promptIds] } : {}),
        ...this.tokenIdsOf(index),
        ...(this.o.promptLogprobs !== null ? { prompt_logprobs: a.promptLogprobs } : {}),
      })),
      usage: this.usage(),
      ...this.calibrationField(topLevelCalibration(this.ends)),
    };
  }

  private emit(index: number, text: string, lp: LegacyLogprobs | null, ids: { token_ids?: number[] } = {}): unknown[] {
    if (this.o.streaming) return [this.chunk(index, text, lp, ids)];
    const a = this.acc[index]!;
    a.text += text;
    if (lp && a.logprobs) {
      a.logprobs.tokens.push(...lp.tokens);
      a.logprobs.token_logprobs.push(...lp.token_logprobs);
      a.logprobs.top_logprobs.push(...lp.top_logprobs);
      a.logprobs.text_offset.push(...lp.text_offset);
    }
    return [];
  }

  /** A stream chunk; a choice's first one carries its prompt's token ids (vLLM's return_token_ids). */
  private chunk(index: number, text: string, logprobs: LegacyLogprobs | null, ids: { token_ids?: number[] } = {}): unknown {
    const first = this.o.returnTokenIds && !this.promptIdsSent[index];
    if (first) this.promptIdsSent[index] = true;
    const promptIds = first ? { prompt_token_ids: [...this.o.sources[index]!.promptIds] } : {};
    return { ...this.envelope('text_completion'), choices: [{ index, text, logprobs, finish_reason: null, ...promptIds, ...ids }] };
  }

  /** Logprobs of `ids` (entries aligned; a null entry is a token nothing predicted). */
  private legacy(index: number, ids: readonly number[], entries: readonly (TokenLogprobs | null)[]): LegacyLogprobs {
    const a = this.acc[index]!;
    const out = emptyLogprobs();
    const { tokenText, tokensAsIds } = this.o;
    ids.forEach((id, k) => {
      const entry = entries[k] ?? null;
      out.tokens.push(tokenText.label(id, tokensAsIds));
      out.token_logprobs.push(entry ? jsonLogprob(entry.logprob) : null);
      out.top_logprobs.push(entry ? topMap(id, entry, this.o.logprobs ?? 0, tokenText, tokensAsIds) : null);
      out.text_offset.push(a.offset);
      a.offset += a.detokenizer!.append(id).length;
    });
    return out;
  }
}

function emptyLogprobs(): LegacyLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

/**
 * As OpenAI's legacy API and vLLM write it: the token itself (sampled, or the prompt token for echo)
 * first, then the `topN` most likely alternatives (the engine may have computed more, for
 * prompt_logprobs), most likely first: N + 1 entries, or N when the token is among the alternatives;
 * `logprobs: 0` gives the token alone. When two ids print the same, the first keeps the key
 * (return_tokens_as_token_ids avoids the clash).
 */
function topMap(id: number, entry: TokenLogprobs, topN: number, tokenText: TokenText, asIds: boolean): Record<string, number> {
  // No prototype: a token that prints as "__proto__" must stay an ordinary key.
  const m = Object.create(null) as Record<string, number>;
  m[tokenText.label(id, asIds)] = jsonLogprob(entry.logprob);
  for (const t of entry.top.slice(0, topN)) {
    const key = tokenText.label(t.id, asIds);
    if (!(key in m)) m[key] = jsonLogprob(t.logprob);
  }
  return m;
}
