/**
 * onnxruntime sessions for compiled decoders: provider fallback, strict feed-name checks, and the
 * session settings every graph of a model shares. Only the engine worker imports this module; the
 * main thread never runs a session.
 */
import ort from 'onnxruntime-node';
import type { DecoderGraphInfo } from '../../models/compiler/decoder-graph.js';

export type OrtTensor = ort.Tensor;
export const OrtTensorCtor = ort.Tensor;

export interface SessionOptions {
  /** Execution providers to try, in order; CPU is always the last resort. */
  providers?: string[];
  intraOpThreads?: number;
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

/**
 * A graph to open: its model bytes (weights inline: tests, small models), or a model file whose
 * weights are external data beside it (the weight store), which onnxruntime memory-maps.
 */
export type LoadableGraph = DecoderGraphInfo & ({ bytes: Uint8Array } | { path: string });

/**
 * A session, from model bytes or a model file, on the first execution provider that loads, CPU the
 * last resort: ORT does not fall back by itself (['cuda','cpu'] throws when the CUDA library is
 * missing). Arena and memory pattern stay on (onnxruntime's defaults). Pre-packing stays on too:
 * graphs over a weight store map the packed weights from disk (weight-prepack.ts), so it costs no
 * per-session copy there, and turning it off makes MatMulNBits dequantize its whole weight on every
 * call.
 */
export async function createOrtSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<{ session: ort.InferenceSession; provider: string }> {
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: opts.intraOpThreads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: opts.optimization ?? 'all',
    executionMode: 'sequential',
  };
  const open = (providers: string[]) => (typeof model === 'string'
    ? ort.InferenceSession.create(model, { ...base, executionProviders: providers })
    : ort.InferenceSession.create(model, { ...base, executionProviders: providers }));
  for (const provider of (opts.providers ?? ['cpu']).filter((p) => p !== 'cpu')) {
    try {
      return { session: await open([provider]), provider };
    } catch {
      // fall through to the next provider
    }
  }
  return { session: await open(['cpu']), provider: 'cpu' };
}

export class DecoderSession {
  private readonly inputNames: Set<string>;
  readonly provider: string;
  private running = 0;
  private releaseWhenIdle = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly graph: DecoderGraphInfo,
    provider: string,
    /** The model file the session was opened from (null for in-memory bytes). */
    readonly modelPath: string | null,
  ) {
    this.inputNames = new Set(session.inputNames);
    this.provider = provider;
  }

  static async create(graph: LoadableGraph, opts: SessionOptions = {}): Promise<DecoderSession> {
    const { session, provider } = await createOrtSession('path' in graph ? graph.path : graph.bytes, opts);
    return new DecoderSession(session, infoOf(graph), provider, pathOf(graph));
  }

  /**
   * Runs one step. ORT silently ignores unknown feed names and only complains about missing ones
   * one at a time, so both are checked here against the session's real input list.
   */
  async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const unknown = Object.keys(feeds).filter((k) => !this.inputNames.has(k));
    const missing = [...this.inputNames].filter((k) => !(k in feeds));
    if (unknown.length || missing.length) {
      throw new Error(`decoder feeds do not match the graph: unknown [${unknown.join(', ')}], missing [${missing.join(', ')}]`);
    }
    this.running++;
    try {
      return await this.session.run(feeds);
    } finally {
      this.running--;
      if (this.running === 0 && this.releaseWhenIdle) await this.session.release();
    }
  }

  /** Releases the session now, or after the run in progress (an evicted graph may still be running). */
  async release(): Promise<void> {
    if (this.running > 0) this.releaseWhenIdle = true;
    else await this.session.release();
  }
}

const pathOf = (graph: LoadableGraph): string | null => ('path' in graph ? graph.path : null);

/** The graph's description without its bytes (a session keeps no reference to the model bytes). */
function infoOf(graph: LoadableGraph): DecoderGraphInfo {
  const { config, imageSplice, inputs, outputs, states, rowInputs, geometry, taps, owners, nodeCount } = graph;
  return { config, imageSplice, inputs, outputs, states, rowInputs, geometry, taps, owners, nodeCount };
}
