/**
 * onnxruntime sessions for compiled decoders: provider fallback and strict feed-name checks.
 * Only the engine worker imports this module; the main thread never runs a session.
 */
import ort from 'onnxruntime-node';
import type { CompiledDecoder } from '../../models/compiler/decoder-graph.js';

export type OrtTensor = ort.Tensor;
export const OrtTensorCtor = ort.Tensor;

export interface SessionOptions {
  /** Execution providers to try, in order; CPU is always the last resort. */
  providers?: string[];
  intraOpThreads?: number;
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

/**
 * A session on the first execution provider that loads, CPU the last resort: ORT does not fall back
 * by itself (['cuda','cpu'] throws when the CUDA library is missing).
 */
export async function createOrtSession(model: Uint8Array, opts: SessionOptions = {}): Promise<{ session: ort.InferenceSession; provider: string }> {
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: opts.intraOpThreads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: opts.optimization ?? 'all',
    executionMode: 'sequential',
  };
  for (const provider of (opts.providers ?? ['cpu']).filter((p) => p !== 'cpu')) {
    try {
      return { session: await ort.InferenceSession.create(model, { ...base, executionProviders: [provider] }), provider };
    } catch {
      // fall through to the next provider
    }
  }
  return { session: await ort.InferenceSession.create(model, { ...base, executionProviders: ['cpu'] }), provider: 'cpu' };
}

export class DecoderSession {
  private readonly inputNames: Set<string>;
  readonly provider: string;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly graph: CompiledDecoder,
    provider: string,
  ) {
    this.inputNames = new Set(session.inputNames);
    this.provider = provider;
  }

  static async create(graph: CompiledDecoder, opts: SessionOptions = {}): Promise<DecoderSession> {
    const { session, provider } = await createOrtSession(graph.bytes, opts);
    return new DecoderSession(session, graph, provider);
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
    return this.session.run(feeds);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
