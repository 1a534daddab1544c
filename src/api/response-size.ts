/**
 * The size of the response a request asks for, bounded before any generation starts. Logprobs are
 * what makes a response large: every fanned-out choice (n x prompts) carries, per token, its own
 * logprob and its alternatives, for generated tokens, for echoed prompt tokens, and for
 * prompt_logprobs. Every field can be within its own limit and the product still be a 511 MB body
 * (which froze /health for 19 s) or more than a JavaScript string can hold (a 500). So the product
 * is bounded: a request whose worst case exceeds `max_logprob_entries` is refused with a 400 that
 * names the fields, whatever the generation would then have done.
 *
 * An entry is one (token, logprob) pair: a token with N alternatives counts N + 1.
 */
import { ApiError } from './errors.js';

export interface LogprobTerm {
  /** The field that asks for it, named in the error's `param` when it is the largest term. */
  field: string;
  /** How the term is made, for the message, e.g. "max_tokens 511 x (logprobs 20 + 1)". */
  describe: string;
  entries: number;
}

export function checkLogprobEntries(terms: readonly LogprobTerm[], limit: number): void {
  const used = terms.filter((t) => t.entries > 0);
  const total = used.reduce((a, t) => a + t.entries, 0);
  if (total <= limit) return;
  const largest = used.reduce((a, t) => (t.entries > a.entries ? t : a));
  const fields = [...new Set(used.map((t) => t.field))];
  throw new ApiError(
    400,
    `the response would hold up to ${total} logprob entries, more than the limit of ${limit} (max_logprob_entries): ` +
      `${used.map((t) => `${t.describe} = ${t.entries}`).join('; ')}. Lower ${fields.join(', ')}, or n, or stream the response`,
    { param: largest.field, code: 'response_too_large' },
  );
}

interface Fanout {
  /** Choices of this prompt (n). */
  choices: number;
  promptTokens: number;
  maxTokens: number;
}

/** /v1/completions: per choice, generated and echoed logprobs, and prompt_logprobs on every choice. */
export function completionsLogprobTerms(prompts: readonly Fanout[], o: { logprobs: number | null; echo: boolean; promptLogprobs: number | null }): LogprobTerm[] {
  const terms: LogprobTerm[] = [];
  const sum = (f: (p: Fanout) => number) => prompts.reduce((a, p) => a + p.choices * f(p), 0);
  const choices = prompts.reduce((a, p) => a + p.choices, 0);
  if (o.logprobs !== null) {
    const per = o.logprobs + 1;
    terms.push({ field: 'max_tokens', describe: `${choices} choices x max_tokens x (logprobs ${o.logprobs} + 1)`, entries: sum((p) => p.maxTokens * per) });
    if (o.echo) terms.push({ field: 'echo', describe: `${choices} choices x prompt tokens x (logprobs ${o.logprobs} + 1) for echo`, entries: sum((p) => p.promptTokens * per) });
  }
  if (o.promptLogprobs !== null) {
    const per = o.promptLogprobs + 1;
    terms.push({ field: 'prompt_logprobs', describe: `${choices} choices x prompt tokens x (prompt_logprobs ${o.promptLogprobs} + 1)`, entries: sum((p) => p.promptTokens * per) });
  }
  return terms;
}

/** /v1/chat/completions: per choice, generated logprobs; prompt_logprobs once, at the top level. */
export function chatLogprobTerms(p: Fanout, o: { topLogprobs: number | null; promptLogprobs: number | null; maxTokensParam: string }): LogprobTerm[] {
  const terms: LogprobTerm[] = [];
  if (o.topLogprobs !== null) {
    const field = o.maxTokensParam;
    terms.push({ field, describe: `${p.choices} choices x ${field} ${p.maxTokens} x (top_logprobs ${o.topLogprobs} + 1)`, entries: p.choices * p.maxTokens * (o.topLogprobs + 1) });
  }
  if (o.promptLogprobs !== null) {
    terms.push({ field: 'prompt_logprobs', describe: `${p.promptTokens} prompt tokens x (prompt_logprobs ${o.promptLogprobs} + 1)`, entries: p.promptTokens * (o.promptLogprobs + 1) });
  }
  return terms;
}
