/**
 * The compile-time side of fragment registration: hands each fragment a FragmentContext, and
 * collects the per-row inputs, states and geometry inputs that fragments declare. The decoder
 * compiler uses one per graph; tests use one to compile a fragment on its own.
 */
import type { DType, Dim, GraphBuilder, Value } from '../onnx/graph-builder.js';
import type { DecoderConfig } from '../checkpoint/decoder-weights.js';
import {
  DIM, GEOMETRY_INPUTS, KEYS_AXIS, hookName,
  type FragmentContext, type GeometryInput, type HookFragment, type HookKind, type RowInputSpec, type RowStateSpec,
} from './hooks.js';

export class FragmentHost {
  readonly states: RowStateSpec[] = [];
  private readonly stateNext = new Map<string, Value | null>();
  private readonly inputs = new Map<string, { spec: RowInputSpec; value: Value }>();
  private readonly geometryInputs = new Map<GeometryInput, Value>();
  private readonly memo = new Map<string, Value>();

  constructor(readonly g: GraphBuilder, readonly config: DecoderConfig) {}

  get rowInputs(): RowInputSpec[] {
    return [...this.inputs.values()].map((r) => r.spec);
  }

  get geometry(): GeometryInput[] {
    return [...this.geometryInputs.keys()];
  }

  declareState(owner: string, name: string, dims: RowStateSpec['dims'], update: RowStateSpec['update']): { value: Value; setNext(next: Value): void } {
    if (this.stateNext.has(name)) throw new Error(`state '${name}' declared twice`);
    const spec: RowStateSpec = { name, outputName: `${name}.update`, dims, update, owner };
    this.states.push(spec);
    this.stateNext.set(name, null);
    const value = this.g.input(name, 'float32', [DIM.batch, ...dims.map((d) => (d === KEYS_AXIS ? DIM.past : d))]);
    return { value, setNext: (next: Value) => void this.stateNext.set(name, next) };
  }

  contextFor(layer: number, kind: HookKind, owner: string): FragmentContext {
    const host = this;
    return {
      g: this.g,
      config: this.config,
      layer,
      hook: hookName(layer, kind),
      owner,
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
      rowState: (name, dims, update) => host.declareState(owner, name, dims, update),
      geometry(which: GeometryInput) {
        let v = host.geometryInputs.get(which);
        if (!v) {
          const dims: Dim[] = which === 'queryValid' ? [DIM.batch, DIM.queries] : which === 'keyPositions' ? [DIM.batch, DIM.keys] : [DIM.batch];
          v = host.g.input(GEOMETRY_INPUTS[which], 'float32', dims);
          host.geometryInputs.set(which, v);
        }
        return v;
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
      out = this.g.scoped(f.owner, () => f.build(input, this.contextFor(layer, kind, f.owner)));
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
