/**
 * A model's graphs, one per set of active calibrators, compiled and opened on first use: a row pays
 * only for the fragments of the calibrators it uses (the empty set is the plain graph). Sessions
 * are kept in a least-recently-used list of bounded length (soft: a graph live rows run stays open); every graph of a model reads the same
 * weights (the weight store, memory-mapped once), so a graph costs its activations, not a copy of
 * the weights.
 */
import type { AnyCalibrator, ModelFacts } from '../../calibrators/calibrator.js';
import type { HookFragment, RowStateSpec } from '../../models/compiler/hooks.js';
import { DecoderSession, type LoadableGraph, type SessionOptions } from './ort-session.js';

/** What the engine asks of a model's graphs. */
export interface EngineGraphs {
  /** Every state any graph may carry (the KV cache and each calibrator's), for the slot pool. */
  readonly states: readonly RowStateSpec[];
  /**
   * The session whose graph holds the fragments of exactly these calibrators (order-free). Graphs
   * whose keys `live` returns (sets that live rows run) are not evicted to make room for it; it is
   * asked only when the bound is passed.
   */
  sessionFor(calibratorIds: readonly string[], live?: () => ReadonlySet<string>): Promise<DecoderSession>;
  /** Names the graph `sessionFor(ids)` returns: rows with equal keys run in one call. */
  keyFor(calibratorIds: readonly string[]): string;
  /** The execution provider the sessions run on. */
  readonly provider: string;
}

/** Compiles the graph for a fragment set, or fetches it from a cache; `describe` keys it there. */
export type GraphCompiler = (fragments: readonly HookFragment[], name: string, describe: string) => Promise<{ graph: LoadableGraph; compileMs: number }>;

export interface DecoderGraphsOptions {
  name: string;
  compiler: GraphCompiler;
  calibrators: readonly AnyCalibrator[];
  facts: ModelFacts;
  /** Fragments compiled into every calibrated graph (tests, benchmarks). */
  extraFragments?: readonly HookFragment[];
  /** False: every step runs the graph with every calibrator's fragments (identity checks). */
  perSet: boolean;
  /** Sessions kept open at once. */
  maxGraphs: number;
  session: SessionOptions;
}

export interface GraphLoadTimes {
  compileMs: number;
  sessionMs: number;
}

export class DecoderGraphs implements EngineGraphs {
  private readonly open = new Map<string, Promise<DecoderSession>>();
  private readonly fragmentsOf: ReadonlyMap<string, readonly HookFragment[]>;
  readonly times: GraphLoadTimes = { compileMs: 0, sessionMs: 0 };
  private firstProvider: string | null = null;

  private constructor(private readonly opts: DecoderGraphsOptions, readonly states: readonly RowStateSpec[], fragmentsOf: Map<string, readonly HookFragment[]>) {
    this.fragmentsOf = fragmentsOf;
  }

  /** Learns every state from the all-calibrators graph, then opens the graph unmarked rows run. */
  static async create(opts: DecoderGraphsOptions): Promise<DecoderGraphs> {
    const fragmentsOf = new Map<string, readonly HookFragment[]>();
    for (const c of opts.calibrators) {
      const f = c.fragments(opts.facts);
      if (f.length) fragmentsOf.set(c.id, f);
    }
    const all = [...fragmentsOf.keys()].sort();
    const full = await compileSet(opts, fragmentsOf, all, true);
    const graphs = new DecoderGraphs(opts, full.graph.states, fragmentsOf);
    graphs.times.compileMs += full.compileMs;
    await graphs.sessionFor([]);
    return graphs;
  }

  /** The execution provider sessions run on (known once one is open). */
  get provider(): string {
    return this.firstProvider ?? 'cpu';
  }

  /** Fragment sets with an open session, least recently used first (tests, diagnostics). */
  get openSets(): string[][] {
    return [...this.open.keys()].map((k) => (k ? k.split(',') : []));
  }

  /** The fragment set a row with these calibrators runs: its own (per set), or every calibrator's. */
  private setOf(calibratorIds: readonly string[]): string[] {
    return this.opts.perSet ? [...new Set(calibratorIds)].filter((id) => this.fragmentsOf.has(id)).sort() : [...this.fragmentsOf.keys()].sort();
  }

  keyFor(calibratorIds: readonly string[]): string {
    return this.setOf(calibratorIds).join(',');
  }

  sessionFor(calibratorIds: readonly string[], live: () => ReadonlySet<string> = () => new Set()): Promise<DecoderSession> {
    const ids = this.setOf(calibratorIds);
    const key = ids.join(',');
    const hit = this.open.get(key);
    if (hit) {
      // Most recently used last; graphs kept past the bound while their rows ran go once they are done.
      this.open.delete(key);
      this.open.set(key, hit);
      this.evict(key, live);
      return hit;
    }
    const opening = this.openSession(ids);
    this.open.set(key, opening);
    // A failed open is forgotten, so the next request tries again.
    opening.catch(() => this.open.get(key) === opening && this.open.delete(key));
    this.evict(key, live);
    return opening;
  }

  private async openSession(ids: readonly string[]): Promise<DecoderSession> {
    // The plain graph has no fragments at all; test fragments ride along with any calibrated set.
    const { graph, compileMs } = await compileSet(this.opts, this.fragmentsOf, ids, ids.length > 0 || !this.opts.perSet);
    const started = performance.now();
    const session = await DecoderSession.create(graph, this.opts.session);
    this.times.compileMs += compileMs;
    this.times.sessionMs += performance.now() - started;
    this.firstProvider ??= session.provider;
    return session;
  }

  /**
   * Closes least recently used graphs down to `maxGraphs`, but never one that live rows still run:
   * closing it would reopen it later in the same step, every step (thrashing). So while more sets
   * are live than `maxGraphs`, more graphs stay open; the bound returns as their rows finish.
   */
  private evict(keep: string, live: () => ReadonlySet<string>): void {
    if (this.open.size <= this.opts.maxGraphs) return;
    const inUse = live();
    for (const [key, session] of this.open) {
      if (this.open.size <= this.opts.maxGraphs) break;
      if (key === keep || inUse.has(key)) continue;
      this.open.delete(key);
      void session.then((s) => s.release(), () => {});
    }
  }

  async release(): Promise<void> {
    const sessions = [...this.open.values()];
    this.open.clear();
    await Promise.all(sessions.map((s) => s.then((x) => x.release(), () => {})));
  }
}

function compileSet(opts: DecoderGraphsOptions, fragmentsOf: ReadonlyMap<string, readonly HookFragment[]>, ids: readonly string[], withExtra: boolean) {
  const extra = withExtra ? opts.extraFragments ?? [] : [];
  const fragments = [...ids.flatMap((id) => fragmentsOf.get(id) ?? []), ...extra];
  const suffix = ids.length ? ids.join('+') : fragments.length ? 'hooked' : 'plain';
  // Everything the graph depends on besides the compiler's code (which the cache hashes itself).
  const describe = JSON.stringify({ calibrators: ids, extra: extra.map((f) => `${f.owner}:${f.hook}`), profile: opts.facts.profile, config: opts.facts.config });
  return opts.compiler(fragments, `${opts.name}_${suffix}`, describe);
}
