/** A push-to-pull queue: the client pushes a request's events as they arrive; the API iterates them. */
import type { EngineEvent } from './types.js';

export class RequestStream implements AsyncIterableIterator<EngineEvent> {
  private readonly buffered: EngineEvent[] = [];
  private waiter: ((r: IteratorResult<EngineEvent>) => void) | null = null;
  private ended = false;

  constructor(private readonly onReturn: () => void = () => {}) {}

  push(e: EngineEvent): void {
    if (this.ended) return;
    if (e.type === 'finish' || e.type === 'error') this.ended = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: e, done: false });
    } else this.buffered.push(e);
  }

  get done(): boolean {
    return this.ended && this.buffered.length === 0;
  }

  next(): Promise<IteratorResult<EngineEvent>> {
    const e = this.buffered.shift();
    if (e) return Promise.resolve({ value: e, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** A consumer that stops early (break, throw) aborts the request. */
  return(): Promise<IteratorResult<EngineEvent>> {
    if (!this.ended) this.onReturn();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<EngineEvent> {
    return this;
  }
}
