/**
 * The server's configuration: one zod schema, so every source (flags, env, JSON file) is checked by
 * the same rules and the defaults live in one place.
 */
import { z } from 'zod';
import { EngineOptionsSchema } from '../engine/engine-options.js';
import { DEFAULT_MODEL } from '../../models/hub.js';
import { parseHostPattern } from '../api/images/host-allow-list.js';

const MiB = 1024 * 1024;

/** Request-shape limits (issue 5, "input limits"). Each one that is exceeded is a 4xx naming it. */
export const LimitsSchema = z.strictObject({
  /** Request body bytes; larger bodies get 413. Sized for a few data-URL images. */
  bodyLimitBytes: z.number().int().min(1024).max(1024 * MiB).default(16 * MiB),
  /** Characters in one prompt or rendered chat; 0 = 64 x the context length. Bounds tokenizer work. */
  maxPromptChars: z.number().int().min(0).default(0),
  maxMessages: z.number().int().min(1).default(256),
  maxStopStrings: z.number().int().min(0).default(16),
  maxStopStringLength: z.number().int().min(1).default(256),
  maxStopTokenIds: z.number().int().min(0).default(64),
  maxLogitBias: z.number().int().min(0).default(300),
  /** Per-token alternatives for `logprobs` / `top_logprobs`; OpenAI's ceiling is 20. */
  maxLogprobs: z.number().int().min(0).max(20).default(20),
  /**
   * Logprob entries one response may hold (a token with N alternatives counts N + 1), over every
   * choice, generated and echoed tokens, and prompt_logprobs; more is a 400 before generation.
   */
  maxLogprobEntries: z.number().int().min(1).default(200_000),
  /** Choices per prompt (`n`). */
  maxN: z.number().int().min(1).default(16),
  /** Prompts in one batched `/v1/completions` request. */
  maxPrompts: z.number().int().min(1).default(32),
  maxImagesPerRequest: z.number().int().min(0).default(8),
  /** Decoded bytes of one image. */
  maxImageBytes: z.number().int().min(1).default(10 * MiB),
  /** Width x height of one image, read from its header. */
  maxImagePixels: z.number().int().min(1).default(4096 * 4096),
});
export type Limits = z.infer<typeof LimitsSchema>;

export const QueueSchema = z.strictObject({
  /** Sequences admitted beyond the engine's batch (waiting for a slot); more get 429. */
  maxQueuedRequests: z.number().int().min(0).default(64),
  /** Prompt tokens of admitted sequences that have not started yet; more get 429. */
  maxQueuedTokens: z.number().int().min(1).default(65536),
  /** Seconds a 429 or 503 tells the client to wait. */
  retryAfterSeconds: z.number().int().min(0).max(3600).default(1),
});
export type QueueConfig = z.infer<typeof QueueSchema>;

/**
 * Fetching `image_url`s from http(s). Off by default: it turns the server into a client of URLs its
 * users choose (SSRF). Only allow-listed hosts are fetched, only at public addresses unless
 * `allowPrivate`, within the image byte cap and a deadline.
 */
export const ImageFetchSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Hostnames or IP literals, exact, or `*.example.com` for the names below a domain. */
    allowHosts: z.array(z.string().refine((s) => parseHostPattern(s) !== null, 'expected a hostname, an IP address or *.domain, without scheme, port or path')).default([]),
    /** Let exactly-listed hosts resolve to loopback or private (RFC 1918, fc00::/7) addresses: tests and air-gapped networks. */
    allowPrivate: z.boolean().default(false),
    /** One deadline for the whole fetch, redirects and body included. */
    timeoutMs: z.number().int().min(1).max(600_000).default(10_000),
    maxRedirects: z.number().int().min(0).max(10).default(3),
  })
  .refine((f) => !f.enabled || f.allowHosts.length > 0, {
    path: ['allowHosts'],
    message: 'image fetching is enabled but no host is allowed; add --image-fetch-allow HOST',
  });
export type ImageFetchConfig = z.infer<typeof ImageFetchSchema>;

/**
 * The connection layer, against slow and greedy clients: how long a body may take to arrive, how long
 * a socket may sit idle, how long a response may wait for its client to read, how many connections
 * are served at once, and how many request-body bytes are held in memory at once.
 */
export const HttpSchema = z.strictObject({
  /** From the end of the headers to the last body byte; past it: 408 and the connection is closed (0 = none). */
  bodyTimeoutSeconds: z.number().min(0).default(30),
  /** A connection with no request in progress (before its first request, or between keep-alive requests) is closed after this. */
  idleTimeoutSeconds: z.number().gt(0).default(65),
  /** A response whose client has read nothing for this long is cut (a stream is aborted and its slot freed); 0 = never. */
  writeTimeoutSeconds: z.number().min(0).default(30),
  /** Connections served at once; past it a request gets 503 and its connection is closed (health probes are still answered). */
  maxConnections: z.number().int().min(1).default(1024),
  /** Request-body bytes held at once across all connections while bodies arrive; a body that does not fit gets 503. */
  bodyMemoryBytes: z.number().int().min(1024).default(256 * MiB),
});
export type HttpConfig = z.infer<typeof HttpSchema>;

const TlsSchema = z
  .object({ certFile: z.string().min(1).optional(), keyFile: z.string().min(1).optional() })
  .strict()
  .superRefine((t, ctx) => {
    // Reported on the setting that was given, so the error names where it came from.
    if ((t.certFile === undefined) === (t.keyFile === undefined)) return;
    ctx.addIssue({
      code: 'custom',
      path: [t.certFile === undefined ? 'keyFile' : 'certFile'],
      message: 'https needs both a certificate (--ssl-certfile) and its key (--ssl-keyfile)',
    });
  });

export const ServerConfigSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8000),
  /** A model name (looked up in modelsDir, then the cache) or a path. */
  model: z.string().min(1).default(DEFAULT_MODEL),
  /** Default: ATTUNE_MODELS_DIR, as the other commands. */
  modelsDir: z.string().min(1).optional(),
  /** The name clients send as `model` and see in /v1/models; default: the model's name. */
  servedModelName: z.string().min(1).optional(),
  /** Bearer keys; auth is on when any key is configured. */
  apiKeys: z.array(z.string().min(1, 'an API key must not be empty')).default([]),
  /** One key per line; blank lines and lines starting with # are skipped. Read once at startup. */
  apiKeyFile: z.string().min(1).optional(),
  /** https instead of http, with these PEM files (vLLM's --ssl-certfile / --ssl-keyfile); both or neither. */
  tls: TlsSchema.default({}),
  /** Let /metrics through without a key (scrapers inside the cluster). */
  metricsPublic: z.boolean().default(false),
  /** Origins allowed by CORS; empty = no CORS headers; "*" = any origin. */
  corsOrigins: z.array(z.string().min(1)).default([]),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Include prompts and messages in request logs (off: they are redacted). */
  logPrompts: z.boolean().default(false),
  /** Per-request deadline in seconds (0 = none); past it the generation is aborted and answered 408. */
  requestTimeoutSeconds: z.number().min(0).default(600),
  /** After SIGTERM, how long in-flight requests may finish before they are aborted. */
  drainTimeoutSeconds: z.number().min(0).default(30),
  /** Seconds between SSE keep-alive comments. */
  sseKeepAliveSeconds: z.number().gt(0).default(15),
  /** How long a passed readiness probe (or any completed engine step) counts as fresh. */
  readyCacheSeconds: z.number().min(0).default(5),
  http: HttpSchema.default(HttpSchema.parse({})),
  engine: EngineOptionsSchema.strict().default(EngineOptionsSchema.parse({})),
  queue: QueueSchema.default(QueueSchema.parse({})),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
  imageFetch: ImageFetchSchema.default(ImageFetchSchema.parse({})),
});
export type ServerConfig = z.infer<typeof ServerConfigSchema>;
/** What buildServer accepts: any subset, defaults filled in by the schema. */
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;

export function parseServerConfig(input: ServerConfigInput): ServerConfig {
  return ServerConfigSchema.parse(input);
}
