/**
 * The part of autocannon 8's programmatic API the load tests use (it ships no types, and there is
 * no @types package in the lockfile). Shapes follow its README; only what we read is declared.
 */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  export interface RequestSpec {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    /** Called before each send of this request; returning a falsy value restarts the sequence. */
    setupRequest?: (req: RequestSpec, context: Record<string, unknown>) => RequestSpec | null | undefined;
    /** The complete (de-chunked) response body, once per response. */
    onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string | string[]>) => void;
  }

  export interface Client extends EventEmitter {
    setRequests(requests: RequestSpec[]): void;
    on(event: 'body', listener: (raw: Buffer) => void): this;
    on(event: 'response', listener: (status: number, bytes: number, durationMs: number) => void): this;
    on(event: 'timeout' | 'request' | 'done', listener: () => void): this;
    on(event: 'connError', listener: (err: Error) => void): this;
  }

  export interface Options {
    url: string;
    connections?: number;
    pipelining?: number;
    /** Seconds; ignored when `amount` is set. */
    duration?: number;
    amount?: number;
    /** Seconds from send to complete response, per request. */
    timeout?: number;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    requests?: RequestSpec[];
    setupClient?: (client: Client) => void;
  }

  export interface Histogram {
    average: number;
    p50: number;
    p99: number;
    max: number;
  }

  export interface Result {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    latency: Histogram;
    statusCodeStats: Record<string, { count: number }>;
  }

  export interface Instance extends EventEmitter {
    stop(): void;
  }

  export default function autocannon(opts: Options, done: (err: Error | null, result: Result) => void): Instance;
}
