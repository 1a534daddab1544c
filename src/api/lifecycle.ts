/**
 * Shutdown state: whether the server still admits work, and the in-flight generations that a drain
 * waits for and, past its deadline, aborts.
 */

/** Why a generation was aborted from outside its own loop. */
export type AbortCause = 'disconnect' | 'timeout' | 'shutdown' | 'failed';

export class Lifecycle {
  private drainingFlag = false;
  private readonly inFlight = new Set<AbortController>();
  private idleWaiters: (() => void)[] = [];

  get draining(): boolean {
    return this.drainingFlag;
  }

  get activeGenerations(): number {
    return this.inFlight.size;
  }

  startDrain(): void {
    this.drainingFlag = true;
  }

  /** Registers a generation; call the returned function when it has ended. */
  track(controller: AbortController): () => void {
    this.inFlight.add(controller);
    return () => {
      this.inFlight.delete(controller);
      if (this.inFlight.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
  }

  /** Resolves true once nothing is in flight, or false when `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.idleWaiters.push(waiter);
    });
  }

  abortAll(cause: AbortCause): void {
    for (const c of this.inFlight) c.abort(cause);
  }
}
