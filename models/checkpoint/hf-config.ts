/**
 * HF `config.json` → DecoderConfig for the Llama-family decoders we compile, with the tensor-name
 * layouts where each architecture stores its language model. Unsupported features are rejected
 * here, by name, before any tensor is read.
 */
import { z } from 'zod';
import type { DecoderConfig, RopeScaling } from './decoder-weights.js';

export const SUPPORTED_ARCHITECTURES = [
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
  'LlavaForConditionalGeneration',
] as const;
export type HfArchitecture = (typeof SUPPORTED_ARCHITECTURES)[number];

const ARCH_BY_MODEL_TYPE: Record<string, HfArchitecture> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  llava: 'LlavaForConditionalGeneration',
};

/** Where a checkpoint keeps its language model: `<model>embed_tokens.weight`, `<model>layers.N.…`, and the head. */
export interface TensorLayout {
  model: string;
  lmHead: string;
  /** Every tensor under this prefix belongs to the language model, so none may go unused. */
  owned: string;
}

export interface HfDecoderSpec {
  architecture: HfArchitecture;
  config: DecoderConfig;
  /** The classifier reuses the embedding (it is also reused when the checkpoint has no lm_head). */
  tieWordEmbeddings: boolean;
  /** Candidate layouts, most likely first; the loader takes the one whose embedding exists. */
  layouts: TensorLayout[];
  /** Qwen2 always has q/k/v biases; the others never may. */
  qkvBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Set when maxSeqLen was lowered to the sliding window (see parseHfDecoderConfig). */
  slidingWindow: number | null;
}

/**
 * transformers' config-class defaults: HF omits fields equal to them (llava-1.5's text_config holds
 * little more than vocab_size). A wrong default cannot pass silently: tensor shapes are checked later.
 */
const DEFAULTS: Record<string, Record<string, unknown>> = {
  llama: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32,
    max_position_embeddings: 2048, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu',
  },
  mistral: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 8, max_position_embeddings: 131072, rms_norm_eps: 1e-6, rope_theta: 10000,
    tie_word_embeddings: false, hidden_act: 'silu', sliding_window: 4096,
  },
  qwen2: {
    vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 32, max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 10000,
    tie_word_embeddings: false, hidden_act: 'silu', use_sliding_window: false, sliding_window: 4096,
  },
};

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

const TextConfigSchema = z.object({
  model_type: z.string().optional(),
  architectures: z.array(z.string()).optional(),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullish(),
  head_dim: positiveInt.nullish(),
  vocab_size: positiveInt,
  max_position_embeddings: positiveInt,
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive().optional(),
  /** transformers ≥ 5 moves rope_theta and the scaling type here. */
  rope_parameters: z.looseObject({ rope_type: z.string().optional(), rope_theta: z.number().positive().optional() }).nullish(),
  rope_scaling: z.unknown().optional(),
  hidden_act: z.string().optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  sliding_window: positiveInt.nullish(),
  use_sliding_window: z.boolean().optional(),
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
});
type TextConfig = z.infer<typeof TextConfigSchema>;

const TopConfigSchema = z.object({
  architectures: z.array(z.string()).optional(),
  model_type: z.string().optional(),
  text_config: z.record(z.string(), z.unknown()).optional(),
});

/**
 * Mistral's sliding window: we keep full causal attention and lower maxSeqLen to the window when it
 * is smaller than max_position_embeddings. Inside the window the two are the same computation, so
 * the model is exact up to maxSeqLen instead of silently wrong beyond the window. Qwen2 applies its
 * window only when `use_sliding_window` is set; then the same clipping applies.
 */
export function parseHfDecoderConfig(json: unknown, source = 'config.json'): HfDecoderSpec {
  const top = TopConfigSchema.safeParse(json);
  if (!top.success) throw new Error(`${source}: ${z.prettifyError(top.error)}`);
  const architecture = pickArchitecture(top.data.architectures, top.data.model_type, source);
  const isLlava = architecture === 'LlavaForConditionalGeneration';
  if (isLlava && !top.data.text_config) throw new Error(`${source}: a LLaVA config needs a text_config`);
  const rawText = (isLlava ? top.data.text_config : json) as Record<string, unknown>;
  const textType = isLlava ? (typeof rawText.model_type === 'string' ? rawText.model_type : 'llama') : modelTypeOf(architecture);
  if (isLlava && !['llama', 'mistral', 'qwen2'].includes(textType)) {
    throw new Error(`${source}: LLaVA text_config.model_type ${textType} is not supported (llama, mistral, qwen2 are)`);
  }
  const where = isLlava ? `${source} text_config` : source;
  const parsed = TextConfigSchema.safeParse({ ...DEFAULTS[textType], ...rawText });
  if (!parsed.success) throw new Error(`${where}: ${z.prettifyError(parsed.error)}`);
  const c = parsed.data;

  const unsupported = (what: string): never => {
    throw new Error(`${where}: ${what} is not supported`);
  };
  if ((c.hidden_act ?? 'silu') !== 'silu') unsupported(`hidden_act ${c.hidden_act}`);
  // transformers < 5 writes `rope_scaling`; 5 folds it into `rope_parameters`. A config with both
  // must not let one silently win over the other.
  const fromScaling = c.rope_scaling != null ? parseRopeScaling(c.rope_scaling, `${where}: rope_scaling`) : undefined;
  const fromParameters = c.rope_parameters ? parseRopeScaling(c.rope_parameters, `${where}: rope_parameters`) : undefined;
  if (c.rope_scaling != null && c.rope_parameters && JSON.stringify(fromScaling) !== JSON.stringify(fromParameters)) {
    throw new Error(`${where}: rope_scaling and rope_parameters ask for different RoPE scaling; keep one`);
  }
  const ropeScaling = fromScaling ?? fromParameters;
  if (c.mlp_bias) unsupported('mlp_bias');
  // Llama's attention_bias also adds an o_proj bias, which DecoderWeights has no place for.
  if (c.attention_bias && textType !== 'qwen2') unsupported('attention_bias (o_proj bias)');

  const nHeads = c.num_attention_heads;
  const nKvHeads = c.num_key_value_heads ?? nHeads;
  const headDim = c.head_dim ?? c.hidden_size / nHeads;
  if (!Number.isInteger(headDim)) throw new Error(`${where}: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${nHeads}; set head_dim`);
  if (headDim % 2 !== 0) throw new Error(`${where}: head_dim ${headDim} is odd, RoPE needs pairs`);
  if (nHeads % nKvHeads !== 0) throw new Error(`${where}: num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);

  const windowed = textType === 'qwen2' ? c.use_sliding_window === true : textType === 'mistral';
  const window = windowed && c.sliding_window != null && c.sliding_window < c.max_position_embeddings ? c.sliding_window : null;

  const config: DecoderConfig = {
    dim: c.hidden_size,
    hiddenDim: c.intermediate_size,
    nLayers: c.num_hidden_layers,
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: c.vocab_size,
    maxSeqLen: window ?? c.max_position_embeddings,
    ropeTheta: c.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000,
    ...(ropeScaling ? { ropeScaling } : {}),
    rmsNormEps: c.rms_norm_eps,
    ropeStyle: 'rotate_half',
  };
  const ids = tokenIds(c, isLlava ? (json as Record<string, unknown>) : {});
  return {
    architecture,
    config,
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    layouts: isLlava
      ? [
          { model: 'language_model.model.', lmHead: 'language_model.lm_head.weight', owned: 'language_model.' },
          // transformers ≥ 4.52 saves LLaVA with the language model under model.language_model.
          { model: 'model.language_model.', lmHead: 'lm_head.weight', owned: 'model.language_model.' },
        ]
      : [{ model: 'model.', lmHead: 'lm_head.weight', owned: '' }],
    qkvBias: textType === 'qwen2',
    ...ids,
    slidingWindow: window,
  };
}

function pickArchitecture(architectures: string[] | undefined, modelType: string | undefined, source: string): HfArchitecture {
  const named = architectures?.[0];
  const arch = named ?? (modelType ? ARCH_BY_MODEL_TYPE[modelType] : undefined);
  if (arch && (SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) return arch as HfArchitecture;
  throw new Error(
    `${source}: architecture ${arch ?? modelType ?? '(none given)'} is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
  );
}

function modelTypeOf(arch: HfArchitecture): string {
  return Object.entries(ARCH_BY_MODEL_TYPE).find(([, a]) => a === arch)![0];
}

const LinearScalingSchema = z.object({ factor: z.number().positive() });
const Llama3ScalingSchema = z
  .object({
    factor: z.number().positive(),
    low_freq_factor: z.number().positive(),
    high_freq_factor: z.number().positive(),
    original_max_position_embeddings: positiveInt,
  })
  .refine((r) => r.high_freq_factor > r.low_freq_factor, { message: 'high_freq_factor must be above low_freq_factor', path: ['high_freq_factor'] });

/** The scaling a rope entry asks for; undefined for plain RoPE. Other types are refused by name. */
function parseRopeScaling(raw: unknown, where: string): RopeScaling | undefined {
  if (typeof raw !== 'object' || raw === null) throw new Error(`${where} must be an object`);
  const entry = raw as { rope_type?: unknown; type?: unknown };
  const type = entry.rope_type ?? entry.type ?? 'default';
  const parse = <T>(schema: z.ZodType<T>): T => {
    const r = schema.safeParse(raw);
    if (!r.success) throw new Error(`${where} (${String(type)}): ${z.prettifyError(r.error)}`);
    return r.data;
  };
  switch (type) {
    case 'default':
      return undefined;
    case 'linear':
      return { type: 'linear', factor: parse(LinearScalingSchema).factor };
    case 'llama3': {
      const r = parse(Llama3ScalingSchema);
      return {
        type: 'llama3', factor: r.factor, lowFreqFactor: r.low_freq_factor, highFreqFactor: r.high_freq_factor,
        originalMaxPositionEmbeddings: r.original_max_position_embeddings,
      };
    }
    default:
      throw new Error(`${where}: rope type ${JSON.stringify(type)} is not supported (default, linear and llama3 are)`);
  }
}

function tokenIds(c: TextConfig, outer: Record<string, unknown>): { bosTokenId: number | null; eosTokenIds: number[] } {
  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
  const bos = c.bos_token_id ?? num(outer.bos_token_id) ?? null;
  const eosRaw = c.eos_token_id ?? outer.eos_token_id;
  const eos = Array.isArray(eosRaw) ? eosRaw.map(num) : [num(eosRaw)];
  return { bosTokenId: bos, eosTokenIds: eos.filter((x): x is number => x !== undefined) };
}
