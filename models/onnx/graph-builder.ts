/**
 * A small typed builder for ONNX graphs. It names values, keeps nodes in topological order (they are
 * appended as they are created, and a node can only consume values that already exist), tags every
 * attribute with its type (onnx-proto requires it), and serialises with onnx-proto. Subgraphs (the
 * branches of an `If`) are builders too: their nodes may read the enclosing graphs' values (ONNX's
 * outer scope), names are unique across the whole model, and constants live in the top graph.
 */
import { onnx, type OnnxNamespace } from './onnx-proto.js';

export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';
/** A dimension: a fixed size, or a symbolic name shared across inputs (e.g. 'batch'). */
export type Dim = number | string;

const ONNX_DTYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** A value flowing through the graph. Only its builder can create one, so names are always known. */
export class Value {
  /** @internal */
  constructor(readonly name: string, readonly builder: GraphBuilder) {}
}

export type Attr =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'graph'; value: GraphBuilder };

export const attr = {
  int: (value: number): Attr => ({ kind: 'int', value }),
  ints: (value: readonly number[]): Attr => ({ kind: 'ints', value }),
  float: (value: number): Attr => ({ kind: 'float', value }),
  string: (value: string): Attr => ({ kind: 'string', value }),
  /** A subgraph made with `GraphBuilder.subgraph` (an `If` branch). */
  graph: (value: GraphBuilder): Attr => ({ kind: 'graph', value }),
};

export interface ValueInfo {
  name: string;
  dtype: DType;
  dims: Dim[];
}

const DTYPE_BYTES: Record<DType, number> = { float32: 4, float16: 2, int64: 8, int32: 4, uint8: 1, bool: 1 };

/** Where an external initializer's bytes are: a file beside the model (ONNX external data). */
export interface ExternalRef {
  /** The file name, relative to the model file's folder. */
  location: string;
  offset: number;
  length: number;
  /**
   * onnxruntime's serialized pre-packed forms of this tensor, in the same file: each under the key
   * ORT files them by (`<op type>+<hash of the packed bytes>`). ORT maps them instead of packing
   * the weight again in every session.
   */
  prepacked?: readonly PrepackedRef[];
}

export interface PrepackedRef {
  key: string;
  blobs: readonly { offset: number; length: number }[];
}

type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

/** Names are unique across a model and its subgraphs, so one registry serves them all. */
interface NameScope {
  names: Set<string>;
  counter: number;
}

export class GraphBuilder {
  private readonly nodes: OnnxNamespace.INodeProto[] = [];
  private readonly initializers: OnnxNamespace.ITensorProto[] = [];
  private readonly inputsInfo: ValueInfo[] = [];
  private readonly outputsInfo: ValueInfo[] = [];
  /** Values this graph defines (a subgraph reads these and its ancestors'). */
  private readonly own = new Set<string>();
  private readonly constCache = new Map<string, Value>();
  private readonly scope: NameScope;
  /** The enclosing graph of a subgraph; null for the model's graph. */
  private readonly parent: GraphBuilder | null;
  private readonly subgraphs: GraphBuilder[] = [];
  /** Prefix of node names (`scoped`): who added a node stays readable in the model. */
  private nodeScope = '';

  constructor(readonly graphName: string, readonly opset = 17, parent: GraphBuilder | null = null) {
    this.parent = parent;
    this.scope = parent ? parent.scope : { names: new Set(), counter: 0 };
  }

  /** The model's top graph, which holds the initializers. */
  private get root(): GraphBuilder {
    return this.parent ? this.parent.root : this;
  }

  /**
   * A subgraph for an `If` branch (`attr.graph(sub)`): no inputs, outputs declared with `output()`,
   * nodes that may read this graph's values and its ancestors'.
   */
  subgraph(name: string): GraphBuilder {
    const sub = new GraphBuilder(this.fresh(name), this.opset, this);
    this.subgraphs.push(sub);
    return sub;
  }

  /** A unique value name built from a readable prefix. */
  fresh(prefix: string): string {
    let name = `${prefix}_${this.scope.counter++}`;
    while (this.scope.names.has(name)) name = `${prefix}_${this.scope.counter++}`;
    return name;
  }

  private claim(name: string): string {
    if (this.scope.names.has(name)) throw new Error(`graph ${this.graphName}: value name '${name}' is already used`);
    this.scope.names.add(name);
    this.own.add(name);
    return name;
  }

  /** Whether this graph can read the value: its own, or an enclosing graph's (outer scope). */
  private sees(v: Value): boolean {
    for (let b: GraphBuilder | null = this; b; b = b.parent) if (v.builder === b) return b.own.has(v.name);
    return false;
  }

  input(name: string, dtype: DType, dims: Dim[]): Value {
    if (this.parent) throw new Error(`subgraph ${this.graphName} cannot declare inputs`);
    this.inputsInfo.push({ name: this.claim(name), dtype, dims });
    return new Value(name, this);
  }

  /** Declares a graph output; a subgraph's output that is not its own value is passed through an Identity. */
  output(value: Value, dtype: DType, dims: Dim[], name?: string): void {
    let v = value;
    if ((name !== undefined && name !== value.name) || (this.parent && value.builder !== this)) v = this.op('Identity', [value], {}, name);
    this.outputsInfo.push({ name: v.name, dtype, dims });
  }

  get inputs(): readonly ValueInfo[] {
    return this.inputsInfo;
  }

  get outputs(): readonly ValueInfo[] {
    return this.outputsInfo;
  }

  /** A weight or constant tensor stored in the model (in its top graph, which every subgraph sees). */
  initializer(name: string, dtype: DType, dims: number[], data: TensorData): Value {
    if (this.parent) return this.root.initializer(name, dtype, dims, data);
    const count = dims.reduce((a, b) => a * b, 1);
    // Raw bytes may carry any dtype (encoded weights); typed arrays must match the element count.
    const elements = data instanceof Uint8Array && dtype !== 'uint8' && dtype !== 'bool' ? data.byteLength / DTYPE_BYTES[dtype] : data.length;
    if (elements !== count) throw new Error(`initializer ${name}: ${elements} elements for dims [${dims}]`);
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({ name: this.claim(name), dataType: ONNX_DTYPE[dtype], dims, rawData: raw });
    return new Value(name, this);
  }

  /**
   * A tensor whose bytes live in a file beside the model, so the protobuf stays small (it cannot
   * exceed 2 GiB) and every graph of a model can point at the same bytes.
   */
  externalInitializer(name: string, dtype: DType, dims: number[], ref: ExternalRef): Value {
    if (this.parent) return this.root.externalInitializer(name, dtype, dims, ref);
    this.initializers.push({
      name: this.claim(name),
      dataType: ONNX_DTYPE[dtype],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: ref.location },
        { key: 'offset', value: String(ref.offset) },
        { key: 'length', value: String(ref.length) },
        // ORT's format: `key|offset;length;checksum[|…]`, one entry per key (checksum unused).
        ...(ref.prepacked ?? []).map((p, i) => ({
          key: `prepacked_${i}`,
          value: [p.key, ...p.blobs.map((b) => `${b.offset};${b.length};0`)].join('|'),
        })),
      ],
    });
    return new Value(name, this);
  }

  /**
   * Runs `build` with node names prefixed by `scope/`, so who added a node stays readable in the
   * model (a calibrator's fragment nodes carry its id).
   */
  scoped<T>(scope: string, build: () => T): T {
    const outer = this.nodeScope;
    this.nodeScope = `${outer}${scope}/`;
    try {
      return build();
    } finally {
      this.nodeScope = outer;
    }
  }

  /** Small constants, de-duplicated so repeated shapes and scalars share one initializer. */
  constFloat(values: number | readonly number[], dims?: number[]): Value {
    const arr = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [arr.length]);
    return this.cachedConst(`f:${d}:${arr.join(',')}`, 'float32', d, Float32Array.from(arr));
  }

  constInt64(values: number | readonly number[], dims?: number[]): Value {
    const arr = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [arr.length]);
    return this.cachedConst(`i:${d}:${arr.join(',')}`, 'int64', d, BigInt64Array.from(arr.map((v) => BigInt(v))));
  }

  private cachedConst(key: string, dtype: DType, dims: number[], data: TensorData): Value {
    if (this.parent) return this.root.cachedConst(key, dtype, dims, data);
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.initializer(this.fresh('const'), dtype, dims, data);
    this.constCache.set(key, v);
    return v;
  }

  /** Appends one node. Pass `outputName` to give its (first) output an exact name, e.g. a hook point. */
  op(opType: string, inputs: (Value | null)[], attrs: Record<string, Attr> = {}, outputName?: string, domain = ''): Value {
    return this.opMulti(opType, inputs, 1, attrs, outputName ? [outputName] : undefined, domain)[0]!;
  }

  opMulti(
    opType: string,
    inputs: (Value | null)[],
    outputCount: number,
    attrs: Record<string, Attr> = {},
    outputNames?: string[],
    domain = '',
  ): Value[] {
    for (const i of inputs) {
      if (i && !this.sees(i)) throw new Error(`${opType}: input ${i.name} belongs to another graph, or does not exist yet`);
    }
    const outs = Array.from({ length: outputCount }, (_, k) =>
      this.claim(outputNames?.[k] ?? this.fresh(opType.toLowerCase())),
    );
    this.nodes.push({
      opType,
      domain,
      name: this.nodeScope + this.fresh(`n_${opType}`),
      input: inputs.map((i) => (i ? i.name : '')),
      output: outs,
      attribute: Object.entries(attrs).map(([name, a]) => toAttributeProto(name, a)),
    });
    return outs.map((n) => new Value(n, this));
  }

  /** Nodes in this graph and its subgraphs (an `If` runs only one branch's). */
  get nodeCount(): number {
    return this.nodes.length + this.subgraphs.reduce((n, sub) => n + sub.nodeCount, 0);
  }

  /** This graph as a GraphProto (a subgraph's, for its `If` attribute). */
  toGraphProto(): OnnxNamespace.IGraphProto {
    const valueInfo = (v: ValueInfo): OnnxNamespace.IValueInfoProto => ({
      name: v.name,
      type: {
        tensorType: {
          elemType: ONNX_DTYPE[v.dtype],
          shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    return {
      name: this.graphName,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputsInfo.map(valueInfo),
      output: this.outputsInfo.map(valueInfo),
    };
  }

  /** Serialises the model (IR 8). */
  toBytes(): Uint8Array {
    if (this.parent) throw new Error(`subgraph ${this.graphName} is serialised with its model`);
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'attune',
      opsetImport: [
        { domain: '', version: this.opset },
        { domain: 'com.microsoft', version: 1 },
      ],
      graph: this.toGraphProto(),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function toAttributeProto(name: string, a: Attr): OnnxNamespace.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'ints':
      return { name, type: T.INTS, ints: [...a.value] };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
    case 'graph':
      return { name, type: T.GRAPH, g: a.value.toGraphProto() };
  }
}
