/** The body of POST /v1/chat/completions. */
import { z } from 'zod';
import type { Limits } from '../../config/schema.js';
import { samplingFields, unsupportedField } from './common.js';

const TextPart = z.object({ type: z.literal('text'), text: z.string() });
const ImagePart = z.object({
  type: z.literal('image_url'),
  image_url: z.union([
    z.object({ url: z.string().min(1), detail: z.enum(['auto', 'low', 'high']).optional() }),
    // vLLM also takes the URL as a bare string.
    z.string().min(1).transform((url) => ({ url, detail: undefined })),
  ]),
});
export const ContentPart = z.discriminatedUnion('type', [TextPart, ImagePart]);
export type ContentPart = z.output<typeof ContentPart>;

const Message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(ContentPart), z.null()]).optional(),
  name: z.string().optional(),
  tool_calls: unsupportedField('tool calls are not supported', (v) => Array.isArray(v) && v.length === 0),
  tool_call_id: unsupportedField('tool messages are not supported'),
});
export type ChatMessageInput = z.output<typeof Message>;

export function chatSchema(limits: Limits) {
  return z.object({
    ...samplingFields(limits),
    messages: z.array(Message).min(1, 'messages must not be empty').max(limits.maxMessages, `at most ${limits.maxMessages} messages (max_messages)`),
    logprobs: z.boolean().nullish().transform((v) => v ?? false),
    top_logprobs: z
      .number()
      .int()
      .min(0)
      .max(limits.maxLogprobs, `top_logprobs may be at most ${limits.maxLogprobs} (max_logprobs)`)
      .nullish()
      .transform((v) => v ?? undefined),
    /** OpenAI's newer name; wins over max_tokens. */
    max_completion_tokens: z.number().int().min(0).nullish().transform((v) => v ?? undefined),
    add_generation_prompt: z.boolean().nullish().transform((v) => v ?? true),
    tools: unsupportedField('tools are not supported', (v) => Array.isArray(v) && v.length === 0),
    tool_choice: unsupportedField('tool_choice is not supported', (v) => v === 'none'),
    functions: unsupportedField('functions are not supported', (v) => Array.isArray(v) && v.length === 0),
    function_call: unsupportedField('function_call is not supported', (v) => v === 'none'),
    parallel_tool_calls: z.unknown().optional(),
    audio: unsupportedField('audio output is not supported'),
    modalities: unsupportedField('only the text modality is supported', (v) => Array.isArray(v) && v.every((m) => m === 'text')),
    prediction: unsupportedField('predicted outputs are not supported'),
    web_search_options: unsupportedField('web search is not supported'),
    echo: unsupportedField('echo is not supported on chat completions', (v) => v === false),
    continue_final_message: unsupportedField('continue_final_message is not supported', (v) => v === false),
    // Templates run code (Jinja); only the model's own template is trusted.
    chat_template: unsupportedField('per-request chat templates are not accepted; the model\'s own template is used'),
    chat_template_kwargs: unsupportedField('chat_template_kwargs is not supported', (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0),
    documents: unsupportedField('documents are not supported'),
    mm_processor_kwargs: unsupportedField('mm_processor_kwargs is not supported'),
  });
}

export type ChatBody = z.output<ReturnType<typeof chatSchema>>;
