/**
 * Shutdown state: whether the server still admits work, and the in-flight requests (generating, or
 * still preparing to) that a drain waits for and, past its deadline, aborts.
 */

/**
 * Why a generation was aborted from outside its own loop: the client left, or stopped reading
 * (`stalled`, cut by the write watchdog), the deadline passed, a drain ran out, or it failed.
 */
export type AbortCause = 'disconnect' | 'stalled' | 'timeout' | 'shutdown' | 'failed';

export class Lifecycle {
  private drainingFlag = false;
  private readonly generations = new Set<AbortController>();
  private readonly preparing = new Set<AbortController>();
  private idleWaiters: (() => void)[] = [];

  get draining(): boolean {
    return this.drainingFlag;
  }

  get activeGenerations(): number {
    return this.generations.size;
  }

  startDrain(): void {
    this.drainingFlag = true;
  }

  /** Registers a generation; call the returned function when it has ended. */
  track(controller: AbortController): () => void {
    return this.register(controller, this.generations);
  }

  /**
   * Registers a request that is still preparing its generation (a chat fetching its images). The
   * drain waits for it and aborts it like a generation, but it is not counted as one.
   */
  trackPreparation(controller: AbortController): () => void {
    return this.register(controller, this.preparing);
  }

  private register(controller: AbortController, set: Set<AbortController>): () => void {
    set.add(controller);
    return () => {
      set.delete(controller);
      if (this.idle) for (const w of this.idleWaiters.splice(0)) w();
    };
  }

  private get idle(): boolean {
    return this.generations.size === 0 && this.preparing.size === 0;
  }

  /** Resolves true once nothing is in flight, or false when `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.idle) return Promise.resolve(true);
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
    for (const c of [...this.generations, ...this.preparing]) c.abort(cause);
  }
}
