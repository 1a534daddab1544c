/**
 * How compilers put weights into graphs. A compiler never calls `g.initializer` for a weight: it
 * asks a WeightProvider for a tensor by its served name, or for a linear layer applied to a value.
 * The provider decides where the bytes live (inline in the protobuf, or external data that every
 * graph of a model shares) and how a linear layer is computed (MatMul on f32 today; compact formats
 * such as MatMulNBits later), so the decoder and the vision tower get the same mechanism for free.
 */
import type { GraphBuilder, Value } from './graph-builder.js';

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
}

/**
 * Inline float32 initializers from arrays in memory (tests, small models). Two names backed by the
 * same array (a tied classifier) share one initializer. A linear weight is stored transposed,
 * `[in, out]`, so MatMul reads it without a Transpose at run time.
 */
export function inlineWeights(tensors: ReadonlyMap<string, InMemoryWeight>): WeightProvider {
  const perGraph = new WeakMap<GraphBuilder, Map<Float32Array, Value>>();
  const lookup = (name: string): InMemoryWeight => {
    const t = tensors.get(name);
    if (!t) throw new Error(`no weight named ${name}`);
    return t;
  };
  const emit = (g: GraphBuilder, name: string, make: () => { dims: number[]; data: Float32Array }, key: Float32Array): Value => {
    let cache = perGraph.get(g);
    if (!cache) perGraph.set(g, (cache = new Map()));
    let v = cache.get(key);
    if (!v) {
      const { dims, data } = make();
      v = g.initializer(name, 'float32', dims, data);
      cache.set(key, v);
    }
    return v;
  };
  return {
    has: (name) => tensors.has(name),
    tensor(g, name) {
      const t = lookup(name);
      if (t.kind !== 'tensor') throw new Error(`${name} is a linear weight; use linear()`);
      return emit(g, name, () => t, t.data);
    },
    linear(g, x, name) {
      const t = lookup(name);
      if (t.kind !== 'linear') throw new Error(`${name} is not a linear weight`);
      const [out, inDim] = t.dims as [number, number];
      const w = emit(g, name, () => ({ dims: [inDim, out], data: transpose2d(t.data, out, inDim) }), t.data);
      return g.op('MatMul', [x, w]);
    },
  };
}

/** `[rows, cols]` row-major → `[cols, rows]` row-major. */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let col = 0; col < cols; col++) out[col * rows + r] = a[base + col]!;
  }
  return out;
}
