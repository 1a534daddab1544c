/**
 * The engine worker: owns the ORT sessions and the KV cache, and runs the scheduling loop. The main
 * thread never calls session.run, which blocks its thread (onnx-notes §3).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EngineCore } from './engine-core.js';
import { loadEngineModel } from './load-engine-model.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';
import type { EngineEvent } from './types.js';
import { greedyProbeRequest, PROBE_ID_PREFIX } from './probe.js';

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

async function main(): Promise<void> {
  const init = workerData as WorkerInit;
  const started = performance.now();
  const { model, times } = await loadEngineModel(init.model, init.options, init.profile);
  const probes = new Map<string, number>();

  const core = new EngineCore(model, init.options, (events) => {
    const forClient: EngineEvent[] = [];
    for (const e of events) {
      const nonce = probes.get(e.id);
      if (nonce === undefined) forClient.push(e);
      else if (e.type === 'finish' || e.type === 'error') {
        probes.delete(e.id);
        post({ type: 'probe', nonce, ok: e.type === 'finish', message: e.type === 'error' ? e.message : undefined });
      }
    }
    post({ type: 'events', events: forClient, stats: core.stats, steps: core.takeStepTokens() });
  });

  let wake: (() => void) | null = null;
  let stopping = false;
  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'submit':
        try {
          core.submit(m.req);
        } catch (e) {
          post({ type: 'rejected', id: m.req.id, message: (e as Error).message });
        }
        break;
      case 'abort':
        core.abort(m.id);
        break;
      case 'probe': {
        const req = greedyProbeRequest(`${PROBE_ID_PREFIX}${m.nonce}`, model.tokenizer.bosId ?? 0);
        probes.set(req.id, m.nonce);
        core.submit(req);
        break;
      }
      case 'crash':
        // Message handlers run between steps (session.run is synchronous on this thread), so the
        // worker dies with ORT idle, exactly like an uncaught error in engine code would kill it.
        setImmediate(() => {
          throw new Error('crash drill: the engine worker was told to die');
        });
        break;
      case 'shutdown':
        stopping = true;
        break;
    }
    wake?.();
  });

  post({
    type: 'ready',
    info: {
      name: model.name,
      config: model.config,
      maxModelLen: core.maxModelLen,
      maxBatch: init.options.maxBatch,
      calibrators: [...model.calibrators.keys()],
      vision: model.facts.vision ?? null,
      provider: model.graphs.provider,
      loadMs: performance.now() - started,
      load: times,
    },
  });

  while (!stopping) {
    if (!core.hasWork) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      continue;
    }
    await core.step();
    // Let submits and aborts in between steps.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  core.failAll('engine is shutting down');
  process.exit(0);
}

main().catch((e: unknown) => {
  post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
