/**
 * The server under load, in a process of its own (forked by server-handle.ts): a load generator in
 * the same process would share the server's event loop and distort every latency it reports. It
 * takes `attune serve` flags and builds the server as `attune serve` does, but always on loopback
 * port 0, and reports its URL to the parent over IPC. The parent's 'stop' message drains it.
 */
import type { AddressInfo } from 'node:net';
import { resolveModel } from '../models/resolve.js';
import { loadModelAssets } from '../src/api/model-assets.js';
import { loadServerConfig } from '../src/config/load-config.js';
import { EngineClient } from '../src/engine/engine-client.js';
import { buildServer } from '../src/server.js';

export type ToParent = { type: 'listening'; url: string; pid: number } | { type: 'failed'; message: string };

async function main(): Promise<void> {
  const loaded = loadServerConfig({ argv: [...process.argv.slice(2), '--host', '127.0.0.1', '--port', '0'], env: process.env });
  if (loaded.help) throw new Error('--help is not a load-test setting');
  const { config } = loaded;
  const model = await resolveModel(config.model, config.modelsDir ? { modelsDir: config.modelsDir } : {});
  const assets = await loadModelAssets(model);
  const engine = await EngineClient.start({ model, engine: config.engine });
  const app = buildServer(config, { engine, ...assets });
  let stopping = false;
  engine.on('down', (why) => {
    if (!stopping) app.log.error({ why }, 'engine worker down');
  });
  await app.listen({ host: config.host, port: config.port });

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await app.attune.drain(5);
    await engine.close();
    process.exit(0);
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') void stop();
  });
  // An orphaned server would hold the CPU the next run measures with.
  process.on('disconnect', () => void stop());

  const { port } = app.server.address() as AddressInfo;
  send({ type: 'listening', url: `http://127.0.0.1:${port}`, pid: process.pid });
}

function send(m: ToParent): void {
  process.send?.(m);
}

main().catch((e: unknown) => {
  send({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
