/**
 * Body fields shared by /v1/completions and /v1/chat/completions, built from the configured limits.
 * Unknown fields are stripped, as OpenAI ignores them; fields attune knows but does not implement are
 * declared here so that they fail loudly instead (TGI's silently ignored `logit_bias` is the cautionary
 * tale).
 */
import { z } from 'zod';
import type { Limits } from '../../config/schema.js';
import { issueParams } from '../validation.js';

/** A field that must be absent (or have its one harmless value): anything else is a 400 naming it. */
export function unsupportedField(message: string, harmless: (v: unknown) => boolean = () => false) {
  return z
    .unknown()
    .refine((v) => v === null || harmless(v), { message, ...issueParams('unsupported_parameter') })
    .optional();
}

const optional = <T extends z.ZodType>(t: T) => t.nullish().transform((v) => v ?? undefined);

/**
 * A record whose key count is checked before its entries: zod validates every entry of a record
 * before any refinement runs, which for a million keys held the event loop for seconds.
 */
export function boundedRecord<V extends z.ZodType>(value: V, max: number, message: string) {
  return z.preprocess((v, ctx) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && countKeysBeyond(v, max)) {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return v;
  }, z.record(z.string(), value));
}

/** Whether `o` has more than `max` own keys, looking at no more than max + 1 of them. */
export function countKeysBeyond(o: object, max: number): boolean {
  let n = 0;
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k) && ++n > max) return true;
  return false;
}

export function samplingFields(limits: Limits) {
  const stopString = z
    .string()
    .min(1, 'a stop string must not be empty')
    .max(limits.maxStopStringLength, `a stop string may have at most ${limits.maxStopStringLength} characters (max_stop_string_length)`);
  return {
    model: optional(z.string()),
    temperature: optional(z.number().min(0).max(100)),
    top_p: optional(z.number().gt(0).max(1)),
    /** -1 and 0 both mean off, as in vLLM. */
    top_k: optional(z.number().int().min(-1)),
    min_p: optional(z.number().min(0).max(1)),
    // Below 1e-3 a division pushes ordinary logits to ±∞, which leaves nothing to sample.
    repetition_penalty: optional(z.number().min(1e-3).max(100)),
    presence_penalty: optional(z.number().min(-2).max(2)),
    frequency_penalty: optional(z.number().min(-2).max(2)),
    /** Keys are token ids as strings; checked against the vocabulary once it is known. */
    logit_bias: optional(boundedRecord(z.number().min(-100).max(100), limits.maxLogitBias, `at most ${limits.maxLogitBias} entries (max_logit_bias)`)),
    seed: optional(z.number().int()),
    stop: optional(
      z.union([stopString, z.array(stopString).max(limits.maxStopStrings, `at most ${limits.maxStopStrings} stop strings (max_stop_strings)`)]),
    ),
    stop_token_ids: optional(z.array(z.number().int().min(0)).max(limits.maxStopTokenIds, `at most ${limits.maxStopTokenIds} stop token ids (max_stop_token_ids)`)),
    max_tokens: optional(z.number().int().min(0)),
    ignore_eos: optional(z.boolean()),
    include_stop_str_in_output: optional(z.boolean()),
    /** vLLM's: the response also carries the prompt's token ids (image placeholders expanded) and each choice's. */
    return_token_ids: optional(z.boolean()),
    /** vLLM's: logprob tokens written as `token_id:N`, which survive tokens that do not decode alone. */
    return_tokens_as_token_ids: optional(z.boolean()),
    n: optional(z.number().int().min(1).max(limits.maxN, `n may be at most ${limits.maxN} (max_n)`)),
    stream: optional(z.boolean()),
    stream_options: optional(
      z.object({
        include_usage: optional(z.boolean()),
        continuous_usage_stats: unsupportedField('continuous_usage_stats is not supported', (v) => v === false),
      }),
    ),
    /** Ignored, as OpenAI and vLLM do. */
    user: optional(z.string()),
    /** vLLM: logprobs of each prompt token after the first, with this many alternatives (not with stream). */
    prompt_logprobs: z
      .number()
      .int()
      .min(0, 'prompt_logprobs must be at least 0 (-1, the whole vocabulary, is not supported)')
      .max(limits.maxLogprobs, `prompt_logprobs may be at most ${limits.maxLogprobs} (max_logprobs)`)
      .nullish()
      .transform((v) => v ?? null),
    /** Validated separately: its shape depends on the registered calibrators. */
    calibration: z
      .unknown()
      .optional()
      .describe('attune: {"<calibrator id>": false | true | {config}, "report": "summary" | "full"}; each config\'s JSON Schema is at GET /v1/calibrators'),
    // vLLM passes these to its logits processors; attune has one consumer, so any other key would
    // be silently dropped: refuse it instead.
    vllm_xargs: optional(z.object({ calibration: z.unknown().optional() }).strict()),

    // vLLM's extra parameters that attune does not implement.
    skip_special_tokens: unsupportedField('skip_special_tokens: false is not supported (special tokens are always skipped)', (v) => v === true),
    spaces_between_special_tokens: unsupportedField('spaces_between_special_tokens is not supported', (v) => v === true),
    /** vLLM: stop tokens and stop strings cannot end the choice before this many tokens (at most max_tokens). */
    min_tokens: optional(z.number().int().min(0)),
    /** vLLM: only with its priority scheduling, which attune does not have (it serves in arrival order). */
    priority: unsupportedField('priority scheduling is not supported: requests are served in arrival order; send 0 or leave priority out', (v) => v === 0),
    /** vLLM: the response id becomes cmpl-<request_id> / chatcmpl-<request_id>. */
    request_id: optional(z.string().regex(/^[\x21-\x7e]{1,128}$/, 'request_id must be 1 to 128 printable ASCII characters without spaces')),
    /** vLLM: salts prefix-cache hashes so tenants cannot probe each other's prompts; attune keeps no prefix cache, so there is nothing shared to salt. */
    cache_salt: optional(z.string().min(1, 'cache_salt must not be empty')),
    kv_transfer_params: unsupportedField('kv_transfer_params is not supported: attune has no disaggregated prefill'),
    structural_tag: unsupportedField('structured outputs are not supported'),
    guided_decoding_backend: unsupportedField('guided decoding is not supported'),
    guided_whitespace_pattern: unsupportedField('guided decoding is not supported'),
    use_beam_search: unsupportedField('beam search is not supported', (v) => v === false),
    length_penalty: unsupportedField('length_penalty is not supported', (v) => v === 1),
    truncate_prompt_tokens: unsupportedField('truncate_prompt_tokens is not supported: attune never truncates a prompt'),
    allowed_token_ids: unsupportedField('allowed_token_ids is not supported; use logit_bias'),
    bad_words: unsupportedField('bad_words is not supported; use logit_bias', (v) => Array.isArray(v) && v.length === 0),
    guided_json: unsupportedField('guided decoding is not supported'),
    guided_regex: unsupportedField('guided decoding is not supported'),
    guided_choice: unsupportedField('guided decoding is not supported'),
    guided_grammar: unsupportedField('guided decoding is not supported'),
    structured_outputs: unsupportedField('structured outputs are not supported'),
    response_format: unsupportedField(
      'response_format other than {"type":"text"} is not supported',
      (v) => typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'text',
    ),
    logits_processors: unsupportedField('per-request logits processors are not accepted; use calibration'),
  };
}

/** Fields both endpoints share, as parsed. */
export type SamplingFieldsShape = ReturnType<typeof samplingFields>;
export type SamplingFields = z.output<z.ZodObject<SamplingFieldsShape>>;
