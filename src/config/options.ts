/**
 * Every setting a user can give on the command line or in the environment, in one table. Parsing,
 * `--help` and the README are all derived from it, so a setting cannot be documented in one place
 * and missing from another.
 */

export type OptionKind = 'string' | 'int' | 'number' | 'bool' | 'list';

export interface OptionSpec {
  /** Long flag name without the dashes. */
  flag: string;
  /** Environment variable; lists are comma-separated there. */
  env: string;
  /** Where the value lands in ServerConfig. */
  path: readonly string[];
  kind: OptionKind;
  /** For a 'list': the flag may repeat. For a 'bool': the flag sets this value (false for --no-x). */
  sets?: boolean;
  /** Shown in --help. */
  help: string;
  /** A value placeholder for --help. */
  meta?: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { flag: 'host', env: 'HOST', path: ['host'], kind: 'string', meta: 'ADDR', help: 'address to listen on' },
  { flag: 'port', env: 'PORT', path: ['port'], kind: 'int', meta: 'N', help: 'port to listen on (0 picks a free one)' },
  { flag: 'model', env: 'ATTUNE_MODEL', path: ['model'], kind: 'string', meta: 'NAME|PATH', help: 'model name (looked up in the models dir, then the cache) or path' },
  { flag: 'models-dir', env: 'ATTUNE_MODELS_DIR', path: ['modelsDir'], kind: 'string', meta: 'DIR', help: 'directory holding <name>/ model folders' },
  { flag: 'served-model-name', env: 'ATTUNE_SERVED_MODEL_NAME', path: ['servedModelName'], kind: 'string', meta: 'NAME', help: 'the model id clients send and /v1/models lists (default: the model name)' },
  { flag: 'api-key', env: 'ATTUNE_API_KEYS', path: ['apiKeys'], kind: 'list', meta: 'KEY', help: 'accepted Bearer key; repeat the flag, or comma-separate in the env var; auth is off when no key is set' },
  { flag: 'api-key-file', env: 'ATTUNE_API_KEY_FILE', path: ['apiKeyFile'], kind: 'string', meta: 'FILE', help: 'file with one API key per line (# comments), read at startup' },
  { flag: 'ssl-certfile', env: 'ATTUNE_SSL_CERTFILE', path: ['tls', 'certFile'], kind: 'string', meta: 'FILE', help: 'serve https with this PEM certificate (or chain); needs --ssl-keyfile' },
  { flag: 'ssl-keyfile', env: 'ATTUNE_SSL_KEYFILE', path: ['tls', 'keyFile'], kind: 'string', meta: 'FILE', help: 'the PEM private key of --ssl-certfile' },
  { flag: 'metrics-public', env: 'ATTUNE_METRICS_PUBLIC', path: ['metricsPublic'], kind: 'bool', sets: true, help: 'serve /metrics without an API key' },
  { flag: 'cors-origin', env: 'ATTUNE_CORS_ORIGINS', path: ['corsOrigins'], kind: 'list', meta: 'ORIGIN', help: 'origin allowed by CORS ("*" for any); repeatable; none = no CORS headers' },
  { flag: 'log-level', env: 'ATTUNE_LOG_LEVEL', path: ['logLevel'], kind: 'string', meta: 'LEVEL', help: 'fatal|error|warn|info|debug|trace|silent' },
  { flag: 'log-prompts', env: 'ATTUNE_LOG_PROMPTS', path: ['logPrompts'], kind: 'bool', sets: true, help: 'include prompts and messages in request logs (redacted otherwise)' },
  { flag: 'request-timeout', env: 'ATTUNE_REQUEST_TIMEOUT', path: ['requestTimeoutSeconds'], kind: 'number', meta: 'SECONDS', help: 'per-request deadline; past it the generation is aborted and answered 408 (0 = none)' },
  { flag: 'drain-timeout', env: 'ATTUNE_DRAIN_TIMEOUT', path: ['drainTimeoutSeconds'], kind: 'number', meta: 'SECONDS', help: 'after SIGTERM/SIGINT, how long in-flight requests may finish before they are aborted' },
  { flag: 'sse-keep-alive', env: 'ATTUNE_SSE_KEEP_ALIVE', path: ['sseKeepAliveSeconds'], kind: 'number', meta: 'SECONDS', help: 'interval of SSE keep-alive comments' },
  { flag: 'ready-cache', env: 'ATTUNE_READY_CACHE', path: ['readyCacheSeconds'], kind: 'number', meta: 'SECONDS', help: 'how long a passed readiness probe (or engine step) stays fresh' },
  // Connections
  { flag: 'body-timeout', env: 'ATTUNE_BODY_TIMEOUT', path: ['http', 'bodyTimeoutSeconds'], kind: 'number', meta: 'SECONDS', help: 'time a request body may take to arrive after its headers; past it 408 and the connection is closed (0 = none)' },
  { flag: 'idle-timeout', env: 'ATTUNE_IDLE_TIMEOUT', path: ['http', 'idleTimeoutSeconds'], kind: 'number', meta: 'SECONDS', help: 'a connection with no request in progress (none sent yet, or between keep-alive requests) is closed after this' },
  { flag: 'write-timeout', env: 'ATTUNE_WRITE_TIMEOUT', path: ['http', 'writeTimeoutSeconds'], kind: 'number', meta: 'SECONDS', help: 'a response whose client reads nothing for this long is cut; a stream is aborted and its slot freed (0 = never)' },
  { flag: 'max-connections', env: 'ATTUNE_MAX_CONNECTIONS', path: ['http', 'maxConnections'], kind: 'int', meta: 'N', help: 'connections served at once; past it requests get 503 and their connection is closed (/health, /ready and /ping are still answered)' },
  { flag: 'body-memory', env: 'ATTUNE_BODY_MEMORY', path: ['http', 'bodyMemoryBytes'], kind: 'int', meta: 'BYTES', help: 'request-body bytes held at once across all connections while bodies arrive; a body that does not fit gets 503' },
  // Engine
  { flag: 'max-batch', env: 'ATTUNE_MAX_BATCH', path: ['engine', 'maxBatch'], kind: 'int', meta: 'N', help: 'sequences decoded together (KV slots)' },
  { flag: 'max-model-len', env: 'ATTUNE_MAX_MODEL_LEN', path: ['engine', 'maxModelLen'], kind: 'int', meta: 'N', help: 'context length, prompt + generated (default: the model\'s own)' },
  { flag: 'prefill-chunk', env: 'ATTUNE_PREFILL_CHUNK', path: ['engine', 'prefillChunk'], kind: 'int', meta: 'N', help: 'prompt tokens per prefill chunk' },
  { flag: 'max-prefill-tokens', env: 'ATTUNE_MAX_PREFILL_TOKENS', path: ['engine', 'maxPrefillTokensPerStep'], kind: 'int', meta: 'N', help: 'padded prompt tokens in one batched prefill' },
  { flag: 'threads', env: 'ATTUNE_THREADS', path: ['engine', 'threads'], kind: 'int', meta: 'N', help: 'ONNX Runtime intra-op threads in the engine worker' },
  { flag: 'provider', env: 'ATTUNE_PROVIDERS', path: ['engine', 'providers'], kind: 'list', meta: 'EP', help: 'execution provider to try before CPU (e.g. cuda); repeatable' },
  { flag: 'no-plain-fast-path', env: 'ATTUNE_NO_PLAIN_FAST_PATH', path: ['engine', 'plainFastPath'], kind: 'bool', sets: false, help: 'run every step on the graph with every calibrator\'s fragments, instead of one graph per set of active calibrators (identity checks)' },
  { flag: 'weights', env: 'ATTUNE_WEIGHTS', path: ['engine', 'weights'], kind: 'string', meta: 'f32|f16|int8|int4', help: 'how linear layers are stored and computed: f32, f16 (rounded to f16, computed in f32), int8 or int4 (blockwise, ORT MatMulNBits); attention and calibrators stay f32' },
  { flag: 'max-graphs', env: 'ATTUNE_MAX_GRAPHS', path: ['engine', 'maxGraphs'], kind: 'int', meta: 'N', help: 'graphs (one per set of active calibrators) kept open; the least recently used is closed, but never one that running requests use (more stay open while more sets run)' },
  { flag: 'compiled-cache', env: 'ATTUNE_COMPILED_CACHE', path: ['engine', 'compiledCacheDir'], kind: 'string', meta: 'DIR', help: 'where weight stores and compiled graphs are cached (default ~/.cache/attune/compiled)' },
  // Admission
  { flag: 'max-queued-requests', env: 'ATTUNE_MAX_QUEUED_REQUESTS', path: ['queue', 'maxQueuedRequests'], kind: 'int', meta: 'N', help: 'sequences waiting beyond the batch before 429' },
  { flag: 'max-queued-tokens', env: 'ATTUNE_MAX_QUEUED_TOKENS', path: ['queue', 'maxQueuedTokens'], kind: 'int', meta: 'N', help: 'prompt tokens waiting to start before 429' },
  { flag: 'retry-after', env: 'ATTUNE_RETRY_AFTER', path: ['queue', 'retryAfterSeconds'], kind: 'int', meta: 'SECONDS', help: 'Retry-After sent with 429 and 503' },
  // Input limits
  { flag: 'body-limit', env: 'ATTUNE_BODY_LIMIT', path: ['limits', 'bodyLimitBytes'], kind: 'int', meta: 'BYTES', help: 'request body size (413 above)' },
  { flag: 'max-prompt-chars', env: 'ATTUNE_MAX_PROMPT_CHARS', path: ['limits', 'maxPromptChars'], kind: 'int', meta: 'N', help: 'characters in one prompt or rendered chat (0 = 64 x context length)' },
  { flag: 'max-messages', env: 'ATTUNE_MAX_MESSAGES', path: ['limits', 'maxMessages'], kind: 'int', meta: 'N', help: 'messages in one chat request' },
  { flag: 'max-stop-strings', env: 'ATTUNE_MAX_STOP_STRINGS', path: ['limits', 'maxStopStrings'], kind: 'int', meta: 'N', help: 'entries in `stop`' },
  { flag: 'max-stop-string-length', env: 'ATTUNE_MAX_STOP_STRING_LENGTH', path: ['limits', 'maxStopStringLength'], kind: 'int', meta: 'N', help: 'characters in one stop string' },
  { flag: 'max-stop-token-ids', env: 'ATTUNE_MAX_STOP_TOKEN_IDS', path: ['limits', 'maxStopTokenIds'], kind: 'int', meta: 'N', help: 'entries in `stop_token_ids`' },
  { flag: 'max-logit-bias', env: 'ATTUNE_MAX_LOGIT_BIAS', path: ['limits', 'maxLogitBias'], kind: 'int', meta: 'N', help: 'entries in `logit_bias`' },
  { flag: 'max-logprobs', env: 'ATTUNE_MAX_LOGPROBS', path: ['limits', 'maxLogprobs'], kind: 'int', meta: 'N', help: '`logprobs` / `top_logprobs` ceiling (at most 20)' },
  { flag: 'max-logprob-entries', env: 'ATTUNE_MAX_LOGPROB_ENTRIES', path: ['limits', 'maxLogprobEntries'], kind: 'int', meta: 'N', help: 'logprob entries one response may hold, over all choices, generated and echoed tokens and prompt_logprobs (a token with N alternatives counts N+1)' },
  { flag: 'max-n', env: 'ATTUNE_MAX_N', path: ['limits', 'maxN'], kind: 'int', meta: 'N', help: 'choices per prompt (`n`)' },
  { flag: 'max-prompts', env: 'ATTUNE_MAX_PROMPTS', path: ['limits', 'maxPrompts'], kind: 'int', meta: 'N', help: 'prompts in one batched completions request' },
  { flag: 'max-images', env: 'ATTUNE_MAX_IMAGES', path: ['limits', 'maxImagesPerRequest'], kind: 'int', meta: 'N', help: 'image parts in one chat request' },
  { flag: 'max-image-bytes', env: 'ATTUNE_MAX_IMAGE_BYTES', path: ['limits', 'maxImageBytes'], kind: 'int', meta: 'BYTES', help: 'decoded size of one image' },
  { flag: 'max-image-pixels', env: 'ATTUNE_MAX_IMAGE_PIXELS', path: ['limits', 'maxImagePixels'], kind: 'int', meta: 'N', help: 'width x height of one image' },
  // Remote images (SSRF surface: off unless enabled)
  { flag: 'image-fetch', env: 'ATTUNE_IMAGE_FETCH', path: ['imageFetch', 'enabled'], kind: 'bool', sets: true, help: 'fetch http(s) image_url parts from allow-listed hosts (off: only data: URLs)' },
  { flag: 'image-fetch-allow', env: 'ATTUNE_IMAGE_FETCH_ALLOW', path: ['imageFetch', 'allowHosts'], kind: 'list', meta: 'HOST', help: 'host images may be fetched from: a name or IP, or *.example.com for names under it; repeatable; checked again on every redirect' },
  { flag: 'image-fetch-allow-private', env: 'ATTUNE_IMAGE_FETCH_ALLOW_PRIVATE', path: ['imageFetch', 'allowPrivate'], kind: 'bool', sets: true, help: 'let exactly-listed hosts resolve to loopback or private addresses (tests, air-gapped networks); link-local and the rest stay refused' },
  { flag: 'image-fetch-timeout', env: 'ATTUNE_IMAGE_FETCH_TIMEOUT', path: ['imageFetch', 'timeoutMs'], kind: 'int', meta: 'MS', help: 'deadline for one image fetch, redirects and body included' },
  { flag: 'image-fetch-max-redirects', env: 'ATTUNE_IMAGE_FETCH_MAX_REDIRECTS', path: ['imageFetch', 'maxRedirects'], kind: 'int', meta: 'N', help: 'redirects followed per image (each target re-checked)' },
];

/** The JSON file is named by a flag or env var of its own; it is not a setting inside itself. */
export const CONFIG_FILE_OPTION = { flag: 'config', env: 'ATTUNE_CONFIG', meta: 'FILE', help: 'JSON file with any of the settings (keys as in ServerConfig, e.g. {"queue":{"maxQueuedRequests":8}}); flags beat env vars beat the file' } as const;
