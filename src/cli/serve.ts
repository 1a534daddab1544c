/**
 * `attune serve`: configuration (flags, env, JSON file), model, engine worker, HTTP server, and a
 * graceful stop. SIGTERM or SIGINT drains: new requests get 503, in-flight ones may finish until the
 * drain timeout, the rest are aborted, then the process exits 0. A second signal cuts the wait short.
 */
import type { FastifyBaseLogger } from 'fastify';
import { resolveModel } from '../../models/resolve.js';
import { loadModelAssets } from '../api/model-assets.js';
import { serveHelp } from '../config/help.js';
import { ConfigError, loadServerConfig } from '../config/load-config.js';
import { EngineClient } from '../engine/engine-client.js';
import { formatLoadTimes } from '../engine/load-times.js';
import { buildServer } from '../server.js';

/** If something still holds the event loop after a clean shutdown, do not hang the orchestrator. */
const EXIT_GRACE_MS = 3000;

export async function run(argv: string[]): Promise<number> {
  let loaded;
  try {
    loaded = loadServerConfig({ argv, env: process.env });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`attune serve: ${e.message}\n`);
    return 2;
  }
  if (loaded.help) {
    process.stdout.write(serveHelp());
    return 0;
  }
  const { config } = loaded;

  const model = await resolveModel(config.model, config.modelsDir ? { modelsDir: config.modelsDir } : {});
  const assets = await loadModelAssets(model);
  const engine = await EngineClient.start({ model, engine: config.engine });
  const app = buildServer(config, { engine, ...assets });
  guardProcess(app.log);
  let stopping = false;
  engine.on('down', (why) => {
    if (!stopping) app.log.error({ why }, 'engine worker down; restarting');
  });
  engine.on('ready', () => app.log.info('engine worker ready'));

  const stopped = new Promise<void>((resolve) => {
    let draining = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (draining) {
        app.log.warn({ signal }, 'second signal: aborting in-flight requests');
        app.attune.lifecycle.abortAll('shutdown');
        return;
      }
      draining = true;
      app.log.info({ signal, inFlight: app.attune.lifecycle.activeGenerations, timeoutSeconds: config.drainTimeoutSeconds }, 'draining');
      app.attune
        .drain()
        .then(({ completed }) => app.log.info({ completed }, completed ? 'drained' : 'drain timed out; aborted the rest'))
        .catch((e: unknown) => app.log.error({ err: e }, 'drain failed'))
        .finally(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (e) {
    // Closing the engine on purpose is not a worker failure: no "engine worker down" line.
    stopping = true;
    await engine.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      process.stderr.write(`attune serve: cannot listen on ${config.host}:${config.port}: ${listenProblem(code)}\n`);
      return 1;
    }
    throw e;
  }
  app.log.info(
    { weights: config.engine.weights, loadSeconds: Number((engine.info.loadMs / 1000).toFixed(2)) },
    `model loaded: ${formatLoadTimes(engine.info.load)}`,
  );
  app.log.info(
    { model: model.name, maxModelLen: engine.info.maxModelLen, auth: config.apiKeys.length > 0 ? `${config.apiKeys.length} key(s)` : 'off', calibrators: engine.info.calibrators },
    'attune is serving',
  );

  await stopped;
  stopping = true;
  await engine.close();
  setTimeout(() => process.exit(0), EXIT_GRACE_MS).unref();
  return 0;
}

function listenProblem(code: string): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'the port is already in use (another attune, or another server?); pick another with --port';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges); pick another with --port';
    default:
      return 'the address is not available on this machine; check --host';
  }
}

/** Nothing a request does may take the process down; such failures are logged instead. */
function guardProcess(log: FastifyBaseLogger): void {
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled rejection'));
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));
}
