/**
 * Readiness, stricter than vLLM's liveness-only /health (vllm#36960): the model is loaded, the
 * worker is alive, a real one-token forward has passed recently, and the server is not draining.
 *
 * A generated token (or prompt logprobs) proves a forward passed, so it counts as a probe. Without
 * that, a busy server would queue its own probe behind client work, time out, and be pulled from the
 * load balancer exactly when it is working hardest. An internal failure does the opposite: the next
 * /ready runs a real probe instead of trusting the last success.
 */
import type { EngineClient } from '../engine/engine-client.js';
import type { EngineEvent } from '../engine/types.js';
import type { Lifecycle } from './lifecycle.js';

export type ReadyState = { ready: true } | { ready: false; reason: 'draining' | 'not_ready' | 'probe_failed'; message: string };

export class Readiness {
  private freshUntil = 0;
  private inFlightProbe: Promise<ReadyState> | null = null;
  private readonly onEvent = (e: EngineEvent) => {
    if (e.type === 'tokens' || e.type === 'prompt') this.freshUntil = performance.now() + this.freshMs;
    else if (e.type === 'error' && e.reason === 'internal') this.freshUntil = 0;
  };
  private readonly onDown = () => {
    this.freshUntil = 0;
  };

  constructor(
    private readonly engine: EngineClient,
    private readonly lifecycle: Lifecycle,
    private readonly freshMs: number,
    private readonly probeTimeoutMs = 10_000,
  ) {
    engine.on('event', this.onEvent);
    engine.on('down', this.onDown);
  }

  /** Detaches from the engine, which may outlive this server (tests share one). */
  dispose(): void {
    this.engine.off('event', this.onEvent);
    this.engine.off('down', this.onDown);
  }

  /** The cheap part, for admission: no probe. */
  servingState(): { reason: 'draining' | 'not_ready'; message: string } | null {
    if (this.lifecycle.draining) return { reason: 'draining', message: 'the server is shutting down' };
    if (!this.engine.isReady) return { reason: 'not_ready', message: 'the model is not ready (the engine is loading or restarting)' };
    return null;
  }

  async check(): Promise<ReadyState> {
    const down = this.servingState();
    if (down) return { ready: false, ...down };
    if (performance.now() < this.freshUntil) return { ready: true };
    // Concurrent /ready calls share one probe.
    this.inFlightProbe ??= this.probe().finally(() => {
      this.inFlightProbe = null;
    });
    return this.inFlightProbe;
  }

  private async probe(): Promise<ReadyState> {
    try {
      await this.engine.probe(this.probeTimeoutMs);
      this.freshUntil = performance.now() + this.freshMs;
      const down = this.servingState();
      return down ? { ready: false, ...down } : { ready: true };
    } catch (e) {
      return { ready: false, reason: 'probe_failed', message: `the readiness probe failed: ${(e as Error).message}` };
    }
  }
}
