/** Bodies of POST /tokenize and /detokenize, in vLLM's shapes. */
import { z } from 'zod';
import type { Limits } from '../../config/schema.js';
import { chatSchema } from './chat.js';

export function tokenizeSchema(limits: Limits, maxModelLen: number) {
  const completion = z.object({
    model: z.string().nullish(),
    prompt: z.string(),
    add_special_tokens: z.boolean().nullish().transform((v) => v ?? true),
    return_token_strs: z.boolean().nullish().transform((v) => v ?? false),
  });
  // The ids are exactly what /v1/chat/completions would feed the model (BOS included when the
  // template does not place it), which is what a client calling /tokenize wants to know.
  const chat = z.object({
    model: z.string().nullish(),
    messages: chatSchema(limits).shape.messages,
    add_generation_prompt: z.boolean().nullish().transform((v) => v ?? true),
    return_token_strs: z.boolean().nullish().transform((v) => v ?? false),
  });
  return { completion, chat, detokenize: detokenizeSchema(maxModelLen) };
}

export type TokenizeCompletionBody = z.output<ReturnType<typeof tokenizeSchema>['completion']>;
export type TokenizeChatBody = z.output<ReturnType<typeof tokenizeSchema>['chat']>;

/** At most a context's worth of ids: detokenizing costs time per id, and no model output is longer. */
export function detokenizeSchema(maxModelLen: number) {
  return z.object({
    model: z.string().nullish(),
    tokens: z.array(z.number().int().min(0)).max(maxModelLen, `at most ${maxModelLen} token ids (the model's context length)`),
  });
}
