/**
 * The main thread's handle on the engine worker: submit requests, stream their events, abort them,
 * probe readiness, and survive worker crashes. When the worker dies, every in-flight request fails
 * with reason 'internal', the client reports not-ready, and the worker restarts with backoff.
 */
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { ResolvedModel } from '../../models/resolve.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import { EngineOptionsSchema, type EngineOptions, type EngineOptionsInput } from './engine-options.js';
import type { EngineStats, FromWorker, ModelInfo, ToWorker, WorkerInit } from './protocol.js';
import { RequestStream } from './request-stream.js';
import type { EngineEvent, GenerationRequest } from './types.js';

export class EngineUnavailableError extends Error {}

export interface EngineClientOptions {
  model: ResolvedModel;
  engine?: EngineOptionsInput;
  /** Replaces the model's own profile for this engine (experiments, the head search). */
  profile?: ModelProfile;
  /**
   * Restart backoff after a crash: doubles from `initialMs` up to `maxMs`, and falls back to
   * `initialMs` only once a worker has stayed up for `stableMs`.
   */
  restart?: { initialMs?: number; maxMs?: number; stableMs?: number };
}

interface ClientEvents {
  ready: [ModelInfo];
  down: [string];
  /** A restart is scheduled this many milliseconds from now. */
  restarting: [number];
  stats: [EngineStats];
  event: [EngineEvent];
  /** Tokens fed by each engine step since the last report. */
  steps: [number[]];
}

const EMPTY_STATS: EngineStats = { running: 0, waiting: 0, slotsInUse: 0, maxSlots: 0, capacity: 0 };

export class EngineClient extends EventEmitter<ClientEvents> {
  private worker: Worker | null = null;
  private readonly streams = new Map<string, RequestStream>();
  private readonly probes = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private probeNonce = 0;
  private modelInfo: ModelInfo | null = null;
  private latestStats: EngineStats = EMPTY_STATS;
  private ready = false;
  private closing = false;
  private restartDelay: number;
  private restartTimer: NodeJS.Timeout | null = null;
  private stableTimer: NodeJS.Timeout | null = null;
  private readonly options: EngineOptions;
  /** How many times the worker has been (re)started. */
  generation = 0;

  private constructor(private readonly opts: EngineClientOptions) {
    super();
    this.options = EngineOptionsSchema.parse(opts.engine ?? {});
    this.restartDelay = opts.restart?.initialMs ?? 100;
  }

  /** Starts the worker and resolves once the model is loaded; rejects if the first load fails. */
  static async start(opts: EngineClientOptions): Promise<EngineClient> {
    const client = new EngineClient(opts);
    await client.spawn();
    return client;
  }

  get isReady(): boolean {
    return this.ready && !this.closing;
  }

  get info(): ModelInfo {
    if (!this.modelInfo) throw new EngineUnavailableError('model is not loaded');
    return this.modelInfo;
  }

  get stats(): EngineStats {
    return this.latestStats;
  }

  get inFlight(): number {
    return this.streams.size;
  }

  private spawn(): Promise<void> {
    this.generation++;
    const init: WorkerInit = { model: this.opts.model, options: this.options, profile: this.opts.profile };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
    this.worker = worker;
    return new Promise<void>((resolve, reject) => {
      let loaded = false;
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          loaded = true;
          this.modelInfo = m.info;
          this.ready = true;
          this.resetBackoffWhenStable(worker);
          this.emit('ready', m.info);
          resolve();
        } else if (m.type === 'fatal') {
          if (!loaded) reject(new Error(`engine failed to load ${this.opts.model.name}: ${m.message}`));
        } else this.onMessage(m);
      });
      worker.on('error', (e) => {
        if (!loaded) reject(e);
      });
      worker.on('exit', (code) => {
        if (!loaded) reject(new Error(`engine worker exited with code ${code} before the model loaded`));
        if (this.worker === worker) this.onWorkerExit(code);
      });
    });
  }

  /**
   * Resetting the backoff as soon as a worker is ready would make it useless against a worker that
   * dies right after every restart (a poison request that clients retry, a broken device): it would
   * reload the model every `initialMs` forever. Only a worker that stays up earns the short delay back.
   */
  private resetBackoffWhenStable(worker: Worker): void {
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => {
      this.stableTimer = null;
      if (this.worker === worker) this.restartDelay = this.opts.restart?.initialMs ?? 100;
    }, this.opts.restart?.stableMs ?? 30_000);
    this.stableTimer.unref();
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'events':
        this.latestStats = m.stats;
        for (const e of m.events) {
          this.emit('event', e);
          const s = this.streams.get(e.id);
          if (!s) continue;
          s.push(e);
          if (e.type === 'finish' || e.type === 'error') this.streams.delete(e.id);
        }
        this.emit('stats', m.stats);
        if (m.steps.length) this.emit('steps', m.steps);
        break;
      case 'rejected': {
        const s = this.streams.get(m.id);
        this.streams.delete(m.id);
        s?.push({ type: 'error', id: m.id, reason: 'validation', message: m.message });
        break;
      }
      case 'probe': {
        const p = this.probes.get(m.nonce);
        this.probes.delete(m.nonce);
        if (m.ok) p?.resolve();
        else p?.reject(new Error(m.message ?? 'probe failed'));
        break;
      }
      default:
        break;
    }
  }

  /** Any exit but close() is a crash: after the first successful load, a worker always comes back. */
  private onWorkerExit(code: number): void {
    this.worker = null;
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = null;
    this.ready = false;
    const why = `engine worker exited with code ${code}`;
    for (const [id, s] of this.streams) s.push({ type: 'error', id, reason: 'internal', message: `${why}; the request was lost mid-generation` });
    this.streams.clear();
    for (const p of this.probes.values()) p.reject(new Error(why));
    this.probes.clear();
    this.latestStats = { ...this.latestStats, running: 0, waiting: 0, slotsInUse: 0 };
    this.emit('down', why);
    // The very first load reports its failure through start(); there is nothing to come back to.
    if (this.closing || !this.modelInfo) return;
    const delay = this.restartDelay;
    this.restartDelay = Math.min(delay * 2, this.opts.restart?.maxMs ?? 10_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      // A reload that fails (the files vanished, the device is gone) exits its worker too, and that
      // exit schedules the next try with the grown delay; the rejection itself needs no handling.
      this.spawn().catch(() => undefined);
    }, delay);
    this.emit('restarting', delay);
  }

  private send(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  /**
   * Submits a request; iterate the result for its events (the last is 'finish' or 'error').
   * Aborting the signal, or leaving the loop early, aborts the request in the engine.
   */
  generate(req: GenerationRequest, signal?: AbortSignal): RequestStream {
    if (!this.isReady) throw new EngineUnavailableError('engine is not ready');
    if (this.streams.has(req.id)) throw new Error(`request id ${req.id} is already in flight`);
    const abort = () => this.abort(req.id);
    const stream = new RequestStream(abort);
    this.streams.set(req.id, stream);
    this.send({ type: 'submit', req });
    if (signal) {
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
    }
    return stream;
  }

  abort(id: string): void {
    if (this.streams.has(id)) this.send({ type: 'abort', id });
  }

  /** A real one-token forward through the engine. */
  probe(timeoutMs = 10_000): Promise<void> {
    if (!this.isReady) return Promise.reject(new EngineUnavailableError('engine is not ready'));
    const nonce = ++this.probeNonce;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.probes.delete(nonce);
        reject(new Error(`probe timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.probes.set(nonce, {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.send({ type: 'probe', nonce });
    });
  }

  /**
   * Fault drill for tests and operations: the worker dies as an uncaught error would kill it, and
   * the client goes through its crash path (fail in-flight requests, not ready, restart). It is a
   * message, not worker.terminate(): terminating a worker while onnxruntime-node is inside
   * session.run aborts the whole process.
   */
  crashWorker(): void {
    this.send({ type: 'crash' });
  }

  /**
   * Stops the worker: it fails whatever is still running at the next step boundary and exits.
   * Only a worker that stays stuck past `graceMs` (a hung native call) is terminated, since
   * terminating one inside session.run can abort the process.
   */
  async close(graceMs = 60_000): Promise<void> {
    this.closing = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.stableTimer) clearTimeout(this.stableTimer);
    const w = this.worker;
    if (!w) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => void w.terminate().then(() => resolve()), graceMs);
      w.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      this.send({ type: 'shutdown' });
    });
    this.worker = null;
  }
}
