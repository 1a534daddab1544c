/**
 * A real attune server on 127.0.0.1:0 around a real engine worker serving stories260K from the
 * shared models directory. One per test file: starting the engine is the slow part.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { resolveModel } from '../../models/resolve.js';
import { loadModelAssets, type ModelAssets } from '../../src/api/model-assets.js';
import type { ServerConfigInput } from '../../src/config/schema.js';
import { EngineClient } from '../../src/engine/engine-client.js';
import { buildServer } from '../../src/server.js';
import { modelsDir } from './models-dir.js';

export interface TestServer {
  url: string;
  app: FastifyInstance;
  engine: EngineClient;
  assets: ModelAssets;
  /** Closes the server, then the engine (unless it was passed in). */
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Share an engine between servers; the caller then closes it. */
  engine?: EngineClient;
  calibrators?: readonly AnyCalibrator[];
  /** Collects log lines (the server logs nothing unless config.logLevel is set). */
  logStream?: { write(line: string): void };
  /** A shared test model other than stories260K. */
  model?: string;
}

export async function startTestServer(config: ServerConfigInput = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  const model = await resolveModel(opts.model ?? 'stories260K', { modelsDir, env: {}, download: false });
  const assets = await loadModelAssets(model);
  const engine = opts.engine ?? (await EngineClient.start({ model, engine: config.engine ?? {} }));
  const app = buildServer({ logLevel: 'silent', ...config }, {
    engine,
    ...assets,
    ...(opts.calibrators ? { calibrators: opts.calibrators } : {}),
    ...(opts.logStream ? { logStream: opts.logStream } : {}),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `${config.tls?.certFile ? 'https' : 'http'}://127.0.0.1:${port}`,
    app,
    engine,
    assets,
    async close() {
      await app.close();
      if (!opts.engine) await engine.close();
    },
  };
}

/** Starts an engine for stories260K with the given options (for tests that share one). */
export async function startEngine(engine: ServerConfigInput['engine'] = {}): Promise<EngineClient> {
  const model = await resolveModel('stories260K', { modelsDir, env: {}, download: false });
  return EngineClient.start({ model, engine: engine ?? {} });
}
