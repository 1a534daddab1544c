/**
 * The compile-time side of fragment registration: hands each fragment a FragmentContext, and
 * collects the per-row inputs, states and geometry inputs that fragments declare. The decoder
 * compiler uses one per graph; tests use one to compile a fragment on its own.
 */
import type { DType, Dim, GraphBuilder, Value } from '../onnx/graph-builder.js';
import type { DecoderConfig } from '../checkpoint/decoder-weights.js';
import {
  DIM, KEYS_AXIS, hookName, tapOutputName,
  type FragmentContext, type HookFragment, type HookKind, type RowInputSpec, type RowStateSpec, type TapSpec,
} from './hooks.js';
import { GEOMETRY, type GeometryInput } from './step-geometry.js';

export class FragmentHost {
  readonly states: RowStateSpec[] = [];
  private readonly stateNext = new Map<string, Value | null>();
  private readonly inputs = new Map<string, { spec: RowInputSpec; value: Value }>();
  private readonly geometryInputs = new Map<GeometryInput, Value>();
  private readonly memo = new Map<string, Value>();
  private readonly scratch = new Map<string, Map<string, Value>>();
  readonly taps: TapSpec[] = [];

  constructor(readonly g: GraphBuilder, readonly config: DecoderConfig) {}

  get rowInputs(): RowInputSpec[] {
    return [...this.inputs.values()].map((r) => r.spec);
  }

  get geometry(): GeometryInput[] {
    return [...this.geometryInputs.keys()];
  }

  declareState(owner: string, name: string, dims: RowStateSpec['dims'], update: RowStateSpec['update'], initial = 0): { value: Value; setNext(next: Value): void } {
    if (this.stateNext.has(name)) throw new Error(`state '${name}' declared twice`);
    if (initial !== 0 && update !== 'overwrite') throw new Error(`state '${name}': only overwrite states have an initial value`);
    const spec: RowStateSpec = { name, outputName: `${name}.update`, dims, update, owner, ...(initial !== 0 ? { initial } : {}) };
    this.states.push(spec);
    this.stateNext.set(name, null);
    const value = this.g.input(name, 'float32', [DIM.batch, ...dims.map((d) => (d === KEYS_AXIS ? DIM.past : d))]);
    return { value, setNext: (next: Value) => void this.stateNext.set(name, next) };
  }

  /** The owner × layer scratch that its fragments share across the hooks of one layer. */
  private localFor(owner: string, layer: number): Map<string, Value> {
    const key = `${owner}:${layer}`;
    let m = this.scratch.get(key);
    if (!m) this.scratch.set(key, (m = new Map()));
    return m;
  }

  contextFor(layer: number, kind: HookKind, owner: string, original: Value): FragmentContext {
    const host = this;
    return {
      g: this.g,
      config: this.config,
      layer,
      hook: hookName(layer, kind),
      owner,
      original,
      local: this.localFor(owner, layer),
      rowInput(name: string, dtype: DType, dims: Dim[], identity: number) {
        const hit = host.inputs.get(name);
        if (hit) {
          if (hit.spec.owner !== owner) throw new Error(`row input '${name}' belongs to ${hit.spec.owner}`);
          return hit.value;
        }
        const spec: RowInputSpec = { name, dtype, dims, owner, identity };
        const value = host.g.input(name, dtype, [DIM.batch, ...dims]);
        host.inputs.set(name, { spec, value });
        return value;
      },
      rowState: (name, dims, update, initial) => host.declareState(owner, name, dims, update, initial),
      geometry(which: GeometryInput) {
        let v = host.geometryInputs.get(which);
        if (!v) {
          const entry = GEOMETRY[which];
          v = host.g.input(entry.name, entry.dtype, [...entry.dims]);
          host.geometryInputs.set(which, v);
        }
        return v;
      },
      tap(name: string, value: Value, dims: Dim[]) {
        const spec: TapSpec = { owner, name, outputName: tapOutputName(owner, name), dims: [DIM.batch, ...dims] };
        if (host.taps.some((t) => t.outputName === spec.outputName)) throw new Error(`tap '${spec.outputName}' declared twice`);
        host.taps.push(spec);
        host.g.output(value, 'float32', spec.dims, spec.outputName);
      },
      shared(key: string, make: () => Value) {
        const k = `${owner}:${key}`;
        let v = host.memo.get(k);
        if (!v) {
          v = make();
          host.memo.set(k, v);
        }
        return v;
      },
    };
  }

  /** Applies every registered fragment for this hook, in registration order. */
  apply(fragments: readonly HookFragment[], layer: number, kind: HookKind, x: Value): Value {
    let out = x;
    for (const f of fragments) {
      if (f.hook !== kind || (f.layers && !f.layers(layer, this.config))) continue;
      const input = out;
      out = this.g.scoped(f.owner, () => f.build(input, this.contextFor(layer, kind, f.owner, x)));
    }
    return out;
  }

  /** Declares every state's update as a graph output; throws for a state nobody updated. */
  emitStateOutputs(): void {
    for (const spec of this.states) {
      const next = this.stateNext.get(spec.name);
      if (!next) throw new Error(`state '${spec.name}' (${spec.owner}) was declared but never updated`);
      const keysDim = spec.update === 'append' ? DIM.queries : DIM.keys;
      this.g.output(next, 'float32', [DIM.batch, ...spec.dims.map((d) => (d === KEYS_AXIS ? keysDim : d))], spec.outputName);
    }
  }
}
