/**
 * `/v1/chat/completions` bodies and chunks. Streaming starts with a role delta per choice, as OpenAI
 * and vLLM do; logprobs use the chat format (`content: [{token, logprob, bytes, top_logprobs}]`).
 */
import type { TokenLogprobs } from '../../engine/types.js';
import { BaseResponder, topLevelCalibration, type ResponderOptions } from './responder.js';
import type { OutputEvent } from './run.js';
import { jsonLogprob, type TokenText } from './token-text.js';
import { promptLogprobs, type PromptLogprobs } from './prompt-logprobs.js';

export interface ChatTopLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export interface ChatLogprob extends ChatTopLogprob {
  top_logprobs: ChatTopLogprob[];
}

export interface ChatOptions extends ResponderOptions {
  logprobs: boolean;
  /** vLLM's top-level prompt_logprobs; null: not asked for. */
  promptLogprobs: { topN: number; promptIds: readonly number[] } | null;
  tokensAsIds: boolean;
  tokenText: TokenText;
  /** Streaming with include_usage: every chunk carries `usage: null`, as OpenAI's do. */
  includeUsage: boolean;
  /** For return_token_ids (image placeholders expanded). */
  promptIds: readonly number[];
}

export class ChatResponder extends BaseResponder {
  private readonly content: string[];
  private readonly logprobs: ChatLogprob[][];
  private promptLogprobs: PromptLogprobs | null = null;

  constructor(private readonly o: ChatOptions) {
    super(o);
    this.content = new Array<string>(o.choices).fill('');
    this.logprobs = Array.from({ length: o.choices }, () => []);
  }

  openChunks(): unknown[] {
    // vLLM sends the prompt's token ids once, in the first chunk.
    return this.content.map((_, index) => ({
      ...this.chunk({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
      ...(index === 0 ? this.promptTokenIds() : {}),
    }));
  }

  private promptTokenIds(): { prompt_token_ids?: number[] } {
    return this.o.returnTokenIds ? { prompt_token_ids: [...this.o.promptIds] } : {};
  }

  onEvent(index: number, event: OutputEvent): unknown[] {
    switch (event.type) {
      case 'prompt': {
        // Every choice shares the prompt: the first to arrive fills the field.
        const wanted = this.o.promptLogprobs;
        if (wanted && !this.promptLogprobs) {
          this.promptLogprobs = promptLogprobs(wanted.promptIds, event.logprobs, wanted.topN, this.o.tokenText, this.o.tokensAsIds);
        }
        return [];
      }
      case 'tokens': {
        const lp = this.o.logprobs && event.logprobs ? event.tokenIds.map((id, k) => this.entry(id, event.logprobs![k]!)) : null;
        const ids = this.tokenIdsDelta(index, event.tokenIds);
        if (!event.text && !lp && !ids.token_ids?.length) return [];
        if (!this.o.streaming) {
          this.content[index] += event.text;
          if (lp) this.logprobs[index]!.push(...lp);
          return [];
        }
        return [this.chunk({ index, delta: { content: event.text }, logprobs: lp ? { content: lp } : null, finish_reason: null, ...ids })];
      }
      case 'finish': {
        const end = this.end(index, event);
        if (!this.o.streaming) return [];
        return [
          {
            ...this.chunk({ index, delta: {}, logprobs: null, finish_reason: end.finish_reason, stop_reason: end.stop_reason }),
            ...this.calibrationField(end.calibration),
          },
        ];
      }
    }
  }

  usageChunk(): unknown {
    return { ...this.envelope('chat.completion.chunk'), choices: [], usage: this.usage() };
  }

  final(): unknown {
    return {
      ...this.envelope('chat.completion'),
      choices: this.content.map((content, index) => ({
        index,
        message: { role: 'assistant', content },
        logprobs: this.o.logprobs ? { content: this.logprobs[index] } : null,
        finish_reason: this.ends[index]?.finish_reason ?? null,
        stop_reason: this.ends[index]?.stop_reason ?? null,
        ...this.tokenIdsOf(index),
      })),
      usage: this.usage(),
      ...this.promptTokenIds(),
      ...(this.o.promptLogprobs ? { prompt_logprobs: this.promptLogprobs } : {}),
      ...this.calibrationField(topLevelCalibration(this.ends)),
    };
  }

  private chunk(choice: Record<string, unknown>): Record<string, unknown> {
    return { ...this.envelope('chat.completion.chunk'), choices: [choice], ...(this.o.includeUsage ? { usage: null } : {}) };
  }

  private entry(id: number, lp: TokenLogprobs): ChatLogprob {
    const { tokenText, tokensAsIds } = this.o;
    const top = (tid: number, logprob: number): ChatTopLogprob => ({ token: tokenText.label(tid, tokensAsIds), logprob: jsonLogprob(logprob), bytes: tokenText.bytes(tid) });
    return { ...top(id, lp.logprob), top_logprobs: lp.top.map((t) => top(t.id, t.logprob)) };
  }
}
