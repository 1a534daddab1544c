/** Kills the engine worker mid-generation through the engine's crash drill. */
import type { EngineClient } from '../../src/engine/engine-client.js';

export function killWorkerAtStepBoundary(engine: EngineClient): void {
  engine.crashWorker();
}
