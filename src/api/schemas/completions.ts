/** The body of POST /v1/completions. */
import { z } from 'zod';
import type { Limits } from '../../config/schema.js';
import { samplingFields, unsupportedField } from './common.js';

export function completionsSchema(limits: Limits) {
  return z.object({
    ...samplingFields(limits),
    /** A string, token ids, or a batch of either; its shape is checked by prompts.ts with exact paths. */
    prompt: z.unknown().optional().describe('a string, an array of token ids, or an array of either (at most max_prompts)'),
    echo: z.boolean().nullish().transform((v) => v ?? false),
    logprobs: z
      .number()
      .int()
      .min(0)
      .max(limits.maxLogprobs, `logprobs may be at most ${limits.maxLogprobs} (max_logprobs)`)
      .nullish()
      .transform((v) => v ?? null),
    best_of: z.number().int().min(1).nullish().transform((v) => v ?? undefined),
    /** vLLM: whether text prompts get the tokenizer's BOS; token-id prompts are used as given. */
    add_special_tokens: z.boolean().nullish().transform((v) => v ?? true),
    suffix: unsupportedField('suffix is not supported', (v) => v === ''),
    /** vLLM: prompts as embeddings instead of tokens. */
    prompt_embeds: unsupportedField('prompt_embeds is not supported; send text or token ids'),
  });
}

export type CompletionsBody = z.output<ReturnType<typeof completionsSchema>>;
