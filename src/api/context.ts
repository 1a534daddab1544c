/**
 * Everything the routes share, built once per server by buildServer. Routes receive it as plugin
 * options instead of reaching for globals, so two servers in one process never share state.
 */
import type { AnyCalibrator, ModelFacts } from '../../calibrators/calibrator.js';
import type { ImagePromptFacts } from './chat-prompt.js';
import type { ImagePreparer } from './images/chat-images.js';
import type { ChatTemplate } from '../../models/tokenizers/chat-template.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { ServerConfig } from '../config/schema.js';
import type { EngineClient } from '../engine/engine-client.js';
import type { ServerMetrics } from '../observability/metrics.js';
import type { Admission } from './admission.js';
import type { TokenText } from './generation/token-text.js';
import type { Lifecycle } from './lifecycle.js';
import type { Readiness } from './readiness.js';
import type { chatSchema } from './schemas/chat.js';
import type { completionsSchema } from './schemas/completions.js';
import type { tokenizeSchema } from './schemas/tokenize.js';

export interface ServedModel {
  /** The id clients send as `model`. */
  id: string;
  /** Unix seconds when the server started, for /v1/models. */
  created: number;
  maxModelLen: number;
  vocabSize: number;
  /** Characters allowed in one prompt (max_prompt_chars, resolved). */
  maxPromptChars: number;
}

/** How the HTTP layer handles images for an LVLM: their placeholders in prompts, and their preprocessing. */
export interface ServedImages {
  prompt: ImagePromptFacts;
  preparer: ImagePreparer;
  /** Stops the threads preprocessing uses (when the server closes). */
  close(): Promise<void>;
}

export interface ServerContext {
  config: ServerConfig;
  /** attune's version (package.json). */
  version: string;
  engine: EngineClient;
  model: ServedModel;
  tokenizer: Tokenizer;
  tokenText: TokenText;
  chatTemplate: ChatTemplate | null;
  /** Null for text-only models. */
  images: ServedImages | null;
  calibrators: ReadonlyMap<string, AnyCalibrator>;
  facts: ModelFacts;
  metrics: ServerMetrics;
  admission: Admission;
  lifecycle: Lifecycle;
  readiness: Readiness;
  schemas: {
    completions: ReturnType<typeof completionsSchema>;
    chat: ReturnType<typeof chatSchema>;
    tokenize: ReturnType<typeof tokenizeSchema>;
  };
}

/** The options every route plugin takes. */
export interface RouteOptions {
  ctx: ServerContext;
}
