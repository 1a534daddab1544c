/**
 * The HTTP server: a Fastify app assembled from plugins (request id, errors, CORS, auth, admission,
 * metrics) and route plugins, around an already-started EngineClient. Building does not listen;
 * the caller owns the engine and calls `listen`, and `app.attune.drain()` for a graceful stop.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AnyCalibrator, ModelFacts } from '../calibrators/calibrator.js';
import { CALIBRATORS } from '../calibrators/index.js';
import type { ModelProfile } from '../models/profiles/profile.js';
import type { Tokenizer } from '../models/tokenizers/tokenizer.js';
import { admissionPlugin } from '../plugins/admission.js';
import { authPlugin } from '../plugins/auth.js';
import { corsPlugin } from '../plugins/cors.js';
import { errorsPlugin } from '../plugins/errors.js';
import { jsonBodyPlugin } from '../plugins/json-body.js';
import { metricsPlugin } from '../plugins/metrics.js';
import { openApiPlugin } from '../plugins/openapi.js';
import { requestIdFor, requestIdPlugin } from '../plugins/request-id.js';
import { transportPlugin } from '../plugins/transport.js';
import { Admission } from './api/admission.js';
import { compileChatTemplate } from './api/chat-prompt.js';
import type { ServerContext } from './api/context.js';
import type { VisionPromptAssets } from '../models/vision-model.js';
import { servedImages } from './api/images/served-images.js';
import { TokenText } from './api/generation/token-text.js';
import { Lifecycle } from './api/lifecycle.js';
import { Readiness } from './api/readiness.js';
import './api/route-config.js';
import { chatRoute } from './api/routes/chat.js';
import { completionsRoute } from './api/routes/completions.js';
import { healthRoutes } from './api/routes/health.js';
import { infoRoutes } from './api/routes/info.js';
import { tokenizeRoutes } from './api/routes/tokenize.js';
import { chatSchema } from './api/schemas/chat.js';
import { completionsSchema } from './api/schemas/completions.js';
import { tokenizeSchema } from './api/schemas/tokenize.js';
import { clientErrorHandler } from './api/transport/client-errors.js';
import { serverTimerOptions } from './api/transport/connection-guard.js';
import { jsonShapeLimits } from './api/transport/shape-limits.js';
import { parseServerConfig, type ServerConfig, type ServerConfigInput } from './config/schema.js';
import { readTlsFiles } from './config/tls.js';
import type { EngineClient } from './engine/engine-client.js';
import { loggerOptions } from './observability/logger.js';
import { ServerMetrics } from './observability/metrics.js';
import { ATTUNE_VERSION } from './version.js';

export interface ServerDeps {
  /** Started, with its model loaded; its options should match `config.engine`. */
  engine: EngineClient;
  tokenizer: Tokenizer;
  profile: ModelProfile;
  /** Jinja source of the chat template; null disables /v1/chat/completions (400). */
  chatTemplate: string | null;
  /** For an LVLM: its image placeholder and preprocessing (ModelAssets.vision); absent for text-only models. */
  vision?: VisionPromptAssets | null;
  /** Default: every registered calibrator (calibrators/index.ts), which is what the engine compiled. */
  calibrators?: readonly AnyCalibrator[];
  /** Where log lines go; default stdout. */
  logStream?: { write(line: string): void };
}

/** What the CLI (and tests) steer a running server with. */
export interface AttuneControls {
  config: ServerConfig;
  metrics: ServerMetrics;
  admission: Admission;
  lifecycle: Lifecycle;
  /**
   * Stops admitting (503), lets in-flight generations finish for up to `timeoutSeconds`, aborts
   * what is left, and closes the server. Resolves with whether everything finished in time.
   */
  drain(timeoutSeconds?: number): Promise<{ completed: boolean }>;
}

declare module 'fastify' {
  interface FastifyInstance {
    attune: AttuneControls;
  }
}

/** After the drain deadline, aborted generations get this long to unwind before the server closes. */
const ABORT_GRACE_MS = 5000;
/**
 * Once closing, connections still open after this long are cut. Without it, a socket a client opened
 * but never used (HTTP clients pre-open them) holds close() until Node's 60 s headers timeout.
 */
const CLOSE_GRACE_MS = 1000;

export function buildServer(input: ServerConfigInput, deps: ServerDeps): FastifyInstance {
  const config = parseServerConfig(input);
  const ctx = createContext(config, deps);

  const https = readTlsFiles(config.tls);
  const timers = serverTimerOptions(config.http.idleTimeoutSeconds * 1000);
  const app = Fastify({
    ...(https ? { https: { ...https, ...timers } } : { http: timers }),
    keepAliveTimeout: timers.keepAliveTimeout,
    clientErrorHandler: clientErrorHandler((reason) => ctx.metrics.connectionClosed(reason)),
    logger: { ...loggerOptions(config), ...(deps.logStream ? { stream: deps.logStream } : {}) },
    bodyLimit: config.limits.bodyLimitBytes,
    genReqId: requestIdFor,
    requestIdHeader: false,
    // During close, requests must still reach our routes, whose 503 has our error shape.
    return503OnClosing: false,
  });

  const controls: AttuneControls = {
    config,
    metrics: ctx.metrics,
    admission: ctx.admission,
    lifecycle: ctx.lifecycle,
    async drain(timeoutSeconds = config.drainTimeoutSeconds) {
      ctx.lifecycle.startDrain();
      const completed = await ctx.lifecycle.whenIdle(timeoutSeconds * 1000);
      if (!completed) {
        ctx.lifecycle.abortAll('shutdown');
        await ctx.lifecycle.whenIdle(ABORT_GRACE_MS);
      }
      await app.close();
      return { completed };
    },
  };
  app.decorate('attune', controls);
  // The engine may outlive this server (tests share one): listen only while the server is up.
  const onSteps = (tokens: number[]) => ctx.metrics.observeSteps(tokens);
  deps.engine.on('steps', onSteps);
  app.addHook('onClose', async () => {
    ctx.readiness.dispose();
    await ctx.images?.close();
    deps.engine.off('steps', onSteps);
  });
  app.addHook('preClose', async () => {
    setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS).unref();
  });

  app.register(transportPlugin, {
    http: config.http,
    bodyLimitBytes: config.limits.bodyLimitBytes,
    retryAfterSeconds: config.queue.retryAfterSeconds,
    jsonShape: jsonShapeLimits(config.limits, ctx.model.maxModelLen),
    secure: https !== null,
    metrics: ctx.metrics,
  });
  app.register(requestIdPlugin);
  app.register(jsonBodyPlugin);
  app.register(errorsPlugin, { metrics: ctx.metrics, bodyLimitBytes: config.limits.bodyLimitBytes });
  app.register(corsPlugin, { origins: config.corsOrigins });
  app.register(authPlugin, { keys: config.apiKeys });
  app.register(admissionPlugin, { admission: ctx.admission });

  app.register(openApiPlugin, { version: ctx.version });

  app.register(healthRoutes, { ctx });
  app.register(metricsPlugin, { metrics: ctx.metrics, public: config.metricsPublic });
  app.register(infoRoutes, { ctx });
  app.register(tokenizeRoutes, { ctx });
  app.register(completionsRoute, { ctx });
  app.register(chatRoute, { ctx });
  return app;
}

function createContext(config: ServerConfig, deps: ServerDeps): ServerContext {
  const { engine } = deps;
  const info = engine.info;
  const id = config.servedModelName ?? info.name;
  const metrics = new ServerMetrics(id, () => engine.stats, info.maxModelLen);
  const calibrators = new Map((deps.calibrators ?? CALIBRATORS).map((c) => [c.id, c]));
  for (const c of calibrators.values()) metrics.declareCalibrator(c.id, c.schema instanceof z.ZodObject ? Object.keys(c.schema.shape) : []);
  const lifecycle = new Lifecycle();
  const readiness = new Readiness(engine, lifecycle, config.readyCacheSeconds * 1000);
  const admission = new Admission(
    {
      slots: engine.info.maxBatch,
      maxQueuedRequests: config.queue.maxQueuedRequests,
      maxQueuedTokens: config.queue.maxQueuedTokens,
      retryAfterSeconds: config.queue.retryAfterSeconds,
    },
    () => readiness.servingState(),
  );
  const facts: ModelFacts = { name: info.name, config: info.config, profile: deps.profile, ...(info.vision ? { vision: info.vision } : {}) };
  return {
    config,
    version: ATTUNE_VERSION,
    engine,
    model: {
      id,
      created: Math.floor(Date.now() / 1000),
      maxModelLen: info.maxModelLen,
      vocabSize: info.config.vocabSize,
      maxPromptChars: config.limits.maxPromptChars || 64 * info.maxModelLen,
    },
    tokenizer: deps.tokenizer,
    tokenText: new TokenText(deps.tokenizer),
    chatTemplate: compileChatTemplate(deps.chatTemplate),
    images: deps.vision ? servedImages(deps.vision, config.limits) : null,
    calibrators,
    facts,
    metrics,
    admission,
    lifecycle,
    readiness,
    schemas: { completions: completionsSchema(config.limits), chat: chatSchema(config.limits), tokenize: tokenizeSchema(config.limits, info.maxModelLen) },
  };
}
