/**
 * How compilers put weights into graphs. A compiler never calls `g.initializer` for a weight: it
 * asks a WeightProvider for a tensor by its served name, or for a linear layer applied to a value.
 * The provider decides where the bytes live (inline in the protobuf, or external data that every
 * graph of a model shares) and how a linear layer is computed (MatMul on f32 today; compact formats
 * such as MatMulNBits later), so the decoder and the vision tower get the same mechanism for free.
 */
import type { GraphBuilder, Value } from './graph-builder.js';
import { emitLinear, encodeLinear, type WeightFormat } from './weight-format.js';

/** One served weight. Linear weights are described `[out, in]`, nn.Linear's layout. */
export type WeightSpec =
  | { kind: 'tensor'; name: string; dims: number[] }
  | { kind: 'linear'; name: string; out: number; in: number };

export interface WeightProvider {
  has(name: string): boolean;
  /** A float32 tensor (embeddings, norm gains, biases, convolution kernels) as a graph value. */
  tensor(g: GraphBuilder, name: string): Value;
  /** `x · Wᵀ` for the linear weight `name` (`[out, in]`), over the last axis of x. */
  linear(g: GraphBuilder, x: Value, name: string): Value;
}

/** A served tensor held in memory: `dims` as the graph sees it (linear: `[out, in]`). */
export interface InMemoryWeight {
  kind: WeightSpec['kind'];
  dims: number[];
  data: Float32Array;
  /** The LM head: compact formats keep it at higher precision. */
  classifier?: boolean;
}

/**
 * A served tensor read on demand, so a store can be written one tensor at a time from a checkpoint
 * of any size. `read` returns float32 values in the `dims` layout (linear: `[out, in]`).
 */
export interface ServedWeight {
  kind: WeightSpec['kind'];
  dims: number[];
  /** The LM head: compact formats keep it at higher precision. */
  classifier?: boolean;
  read(): Promise<Float32Array>;
}

/** A model part's served weights by name (the decoder's, a vision tower's). */
export type ServedWeights = ReadonlyMap<string, ServedWeight>;

/** Served weights over arrays already in memory. */
export function servedFromMemory(tensors: ReadonlyMap<string, InMemoryWeight>): ServedWeights {
  return new Map([...tensors].map(([name, t]) => [name, { kind: t.kind, dims: t.dims, classifier: t.classifier, read: async () => t.data }]));
}

/**
 * Inline initializers from arrays in memory (tests, small models), in any weight format. A weight
 * used twice in one graph is emitted once.
 */
export function inlineWeights(tensors: ReadonlyMap<string, InMemoryWeight>, format: WeightFormat = 'f32'): WeightProvider {
  const perGraph = new WeakMap<GraphBuilder, Map<string, Value[]>>();
  const lookup = (name: string): InMemoryWeight => {
    const t = tensors.get(name);
    if (!t) throw new Error(`no weight named ${name}`);
    return t;
  };
  const emitted = (g: GraphBuilder, name: string, make: () => Value[]): Value[] => {
    let cache = perGraph.get(g);
    if (!cache) perGraph.set(g, (cache = new Map()));
    let v = cache.get(name);
    if (!v) cache.set(name, (v = make()));
    return v;
  };
  return {
    has: (name) => tensors.has(name),
    tensor(g, name) {
      const t = lookup(name);
      if (t.kind !== 'tensor') throw new Error(`${name} is a linear weight; use linear()`);
      return emitted(g, name, () => [g.initializer(name, 'float32', t.dims, t.data)])[0]!;
    },
    linear(g, x, name) {
      const t = lookup(name);
      if (t.kind !== 'linear') throw new Error(`${name} is not a linear weight`);
      const [out, inDim] = t.dims as [number, number];
      const enc = encodeLinear(format, t.data, out, inDim, t.classifier === true);
      const arrays = emitted(g, name, () => enc.tensors.map((e) => g.initializer(storedName(name, e.role), e.dtype, e.dims, e.bytes)));
      return emitLinear(g, x, enc.kernel, out, inDim, arrays);
    },
  };
}

/** The initializer name of one stored array of a served weight. */
export const storedName = (name: string, role: string): string => (role === 'weight' ? name : `${name}.${role}`);
