/**
 * `npm run bench:act-variants`: the evidence behind the README's "the ACT decode target cannot be
 * met here". The shipped ACT fragment against two leaner formulations of the same semantics, on
 * stories260K with ACT on every head of layers 2..4, each in its own ORT session, fed the same
 * decode step and run alternating in one process:
 *   - `lean-where`: 2 control inputs instead of 6 (τ·(n − j) precomputed per key; β per layer and
 *     head, 1 for heads that are off), the non-sink mass by `Where`, the sink mass as total − rest;
 *   - `lean-masks`: the same inputs, float masks instead of `Where`, and the spared sink found by
 *     ReduceMax over position-weighted flags instead of ArgMax and ScatterElements.
 * Each variant is first checked against the shipped fragment (logits and column sums within 1e-4;
 * ACT itself moves these logits by about 0.9), so the timings compare equal work. They are measuring
 * devices, not drop-in fragments: `lean-masks` takes each attention row's total as 1 (true of softmax
 * rows to rounding), and its position weights cover keys up to maxSeqLen + 1. Session time only: no
 * engine, so only the graphs differ.
 */
import { resolveModel } from '../models/resolve.js';
import { loadDecoderWeights } from '../models/load-decoder.js';
import { loadModelProfile } from '../calibrators/index.js';
import { compileDecoder, type CompiledDecoder } from '../models/compiler/decoder-graph.js';
import { DIM, KEYS_AXIS, type FragmentContext, type HookFragment } from '../models/compiler/hooks.js';
import { attr, type Value } from '../models/onnx/graph-builder.js';
import { act, defaultActLayers, SMALLEST_NORMAL_F32 } from '../calibrators/act.js';
import { DecoderSession, OrtTensorCtor, type OrtTensor } from '../src/engine/ort-session.js';
import { buildStepFeeds, stepShape } from '../src/engine/step-feeds.js';
import { machineHeader, median } from './report.js';

const MODEL = process.env.BENCH_MODEL ?? 'stories260K';
const TAU = 0.1, BETA = 0.4;
const SHAPES = [[1, 128], [8, 128], [1, 256], [8, 256]] as const;
const ROUNDS = 25, RUNS_PER_ROUND = 40;


/** The parts both lean variants share: controls, the running column sums, detection. */
function leanDetection(A: Value, ctx: FragmentContext, layers: readonly number[]) {
  const { g, layer } = ctx;
  const H = ctx.config.nHeads;
  const i64 = (v: number[]) => g.constInt64(v);
  const threshold = ctx.rowInput('act.threshold', 'float32', [1, 1, DIM.keys], Infinity);
  const betaAll = ctx.rowInput('act.beta', 'float32', [layers.length, H, 1, 1], 1);
  const beta = g.op('Gather', [betaAll, g.constInt64(layers.indexOf(layer))], { axis: attr.int(1) });
  const padNew = ctx.shared('pad_new', () =>
    g.op('Concat', [i64([0, 0, 0, 0, 0, 0, 0]), g.op('Slice', [g.op('Shape', [A]), i64([2]), i64([3])])], { axis: attr.int(0) }));
  const state = ctx.rowState(`act.colsum.${layer}`, [H, 1, KEYS_AXIS], 'replace');
  const colsum = g.op('Add', [g.op('Pad', [state.value, padNew]), g.op('ReduceSum', [A, i64([2])], { keepdims: attr.int(1) })]);
  state.setNext(colsum);
  return { beta, detected: g.op('Greater', [colsum, threshold]) };
}

function leanWhere(layers: readonly number[]): HookFragment {
  return {
    owner: 'act', hook: 'attn.hook_pattern', layers: (l) => layers.includes(l),
    build(A, ctx) {
      const { g } = ctx;
      const { beta, detected } = leanDetection(A, ctx, layers);
      const first = g.op('ArgMax', [g.op('Cast', [detected], { to: attr.int(1) })], { axis: attr.int(3), keepdims: attr.int(1) });
      const noSink = ctx.shared('no_sink', () => g.op('Cast', [g.op('ConstantOfShape', [g.op('Shape', [first])])], { to: attr.int(9) }));
      const sinks = g.op('ScatterElements', [detected, first, noSink], { axis: attr.int(3) });
      const zero = g.constFloat(0), one = g.constFloat(1);
      const restMass = g.op('ReduceSum', [g.op('Where', [sinks, zero, A]), g.constInt64([-1])], { keepdims: attr.int(1) });
      const total = g.op('ReduceSum', [A, g.constInt64([-1])], { keepdims: attr.int(1) });
      const freed = g.op('Mul', [g.op('Sub', [one, beta]), g.op('Sub', [total, restMass])]);
      const restGain = g.op('Div', [g.op('Add', [restMass, freed]), restMass]);
      const keep = g.op('Greater', [restMass, g.constFloat(SMALLEST_NORMAL_F32)]);
      const gain = g.op('Where', [sinks, g.op('Where', [keep, beta, one]), g.op('Where', [keep, restGain, one])]);
      return g.op('Mul', [A, gain]);
    },
  };
}

function leanMasks(layers: readonly number[], maxSeqLen: number): HookFragment {
  return {
    owner: 'act', hook: 'attn.hook_pattern', layers: (l) => layers.includes(l),
    build(A, ctx) {
      const { g } = ctx;
      const { beta, detected } = leanDetection(A, ctx, layers);
      const flags = g.op('Cast', [detected], { to: attr.int(1) });
      // Decreasing weights per key: the first detected key holds the largest weighted flag.
      const weights = ctx.shared('key_weights', () => g.op('Slice', [
        g.constFloat(Array.from({ length: maxSeqLen + 1 }, (_, j) => maxSeqLen + 1 - j), [1, 1, 1, maxSeqLen + 1]),
        g.constInt64([0]), g.op('Slice', [g.op('Shape', [A]), g.constInt64([3]), g.constInt64([4])]), g.constInt64([3]),
      ]));
      const weighted = g.op('Mul', [flags, weights]);
      const firstWeight = g.op('ReduceMax', [weighted], { axes: attr.ints([3]), keepdims: attr.int(1) });
      const sinks = g.op('Mul', [flags, g.op('Cast', [g.op('Less', [weighted, firstWeight])], { to: attr.int(1) })]);
      const onSinks = g.op('Mul', [A, sinks]);
      const rest = g.op('Sub', [A, onSinks]);
      const restMass = g.op('ReduceSum', [rest, g.constInt64([-1])], { keepdims: attr.int(1) });
      const one = g.constFloat(1);
      const restGain = g.op('Add', [beta, g.op('Div', [g.op('Sub', [one, beta]), restMass])]);
      const keep = g.op('Greater', [restMass, g.constFloat(SMALLEST_NORMAL_F32)]);
      return g.op('Add', [g.op('Mul', [rest, g.op('Where', [keep, restGain, one])]), g.op('Mul', [onSinks, g.op('Where', [keep, beta, one])])]);
    },
  };
}

/**
 * One decode step's feeds for any of the graphs: B rows with `used` positions filled of C. The
 * decoder's own inputs come from the engine's step builder; this adds the cache and ACT's inputs.
 */
function decodeFeeds(graph: CompiledDecoder, B: number, C: number, used: number): Record<string, OrtTensor> {
  const K = C + 1;
  const rows = Array.from({ length: B }, () => ({ tokens: [5], past: used, allLogits: false, images: [] }));
  const feeds = buildStepFeeds(stepShape(rows, C), graph.config.maxSeqLen, graph.geometry);
  const dimOf = (d: string | number): number =>
    typeof d === 'number' ? d : ({ [DIM.batch]: B, [DIM.queries]: 1, [DIM.past]: C, [DIM.keys]: K, [DIM.logitRows]: 1 } as Record<string, number>)[d]!;
  // Queries that can see key j after this step; the new key sits at index C; empty slots never count.
  const divisor = (j: number) => (j < used ? used + 1 - j : j === C ? 1 : Infinity);
  for (const input of graph.inputs) {
    if (input.name in feeds) continue;
    const dims = input.dims.map(dimOf);
    const n = dims.reduce((a, b) => a * b, 1);
    const f32 = (fill: (i: number) => number) => new OrtTensorCtor('float32', Float32Array.from({ length: n }, (_, i) => fill(i)), dims);
    const name = input.name;
    if (name === 'act.divisor') feeds[name] = f32((i) => divisor(i % K));
    else if (name === 'act.tau') feeds[name] = f32(() => TAU);
    else if (name === 'act.threshold') feeds[name] = f32((i) => Math.fround(Math.fround(TAU) * divisor(i % K)));
    else if (name === 'act.beta') feeds[name] = f32(() => BETA);
    else if (name.startsWith('act.heads.')) feeds[name] = new OrtTensorCtor('bool', new Uint8Array(n).fill(1), dims);
    // Column sums around the thresholds, so every head has sinks to find and to spare.
    else if (name.startsWith('act.colsum.')) feeds[name] = f32((i) => (i % C < used ? Math.abs(Math.sin(i)) * TAU * (used - (i % C)) * 1.5 : 0));
    else feeds[name] = f32((i) => Math.sin(i) * 0.1); // the KV cache
  }
  return feeds;
}

async function main(): Promise<void> {
  const model = await resolveModel(MODEL);
  const weights = await loadDecoderWeights(model);
  const c = weights.config;
  const layers = defaultActLayers(c.nLayers);
  const facts = { name: model.name, config: c, profile: loadModelProfile(model.name, model.dir) };
  const graphs: [string, CompiledDecoder][] = [
    ['plain', compileDecoder(weights)],
    ['shipped', compileDecoder(weights, { fragments: act.fragments(facts) })],
    ['lean-where', compileDecoder(weights, { fragments: [leanWhere(layers)] })],
    ['lean-masks', compileDecoder(weights, { fragments: [leanMasks(layers, c.maxSeqLen)] })],
  ];
  const sessions = await Promise.all(graphs.map(([, g]) => DecoderSession.create(g, { intraOpThreads: 1 })));

  // Equal work first: every variant gives the shipped fragment's logits and column sums.
  for (const [B, C] of SHAPES) {
    const outs = await Promise.all(graphs.map(([, g], k) => sessions[k]!.run(decodeFeeds(g, B, C, C - 20))));
    for (let k = 2; k < graphs.length; k++) {
      for (const name of ['logits', ...layers.map((l) => `act.colsum.${l}.update`)]) {
        const a = outs[1]![name]!.data as Float32Array, b = outs[k]![name]!.data as Float32Array;
        const diff = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
        if (!(diff <= 1e-4)) throw new Error(`${graphs[k]![0]} differs from the shipped fragment in ${name} by ${diff} (B ${B}, C ${C})`);
      }
    }
  }

  console.log(machineHeader(`ACT fragment variants: ${MODEL}, ACT on all ${c.nHeads} heads of layers ${layers[0]}..${layers.at(-1)}`));
  console.log(`(one decode step in ORT alone, medians of ${ROUNDS} alternating rounds of ${RUNS_PER_ROUND}; the variants match the shipped fragment to 1e-4)`);
  console.log(`graph nodes: ${graphs.map(([n, g]) => `${n} ${g.nodeCount}`).join(', ')}`);
  for (const [B, C] of SHAPES) {
    const feeds = graphs.map(([, g]) => decodeFeeds(g, B, C, C - 20));
    const times: number[][] = graphs.map(() => []);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < graphs.length; k++) {
        const t0 = performance.now();
        for (let i = 0; i < RUNS_PER_ROUND; i++) await sessions[k]!.run(feeds[k]!);
        times[k]!.push(((performance.now() - t0) / RUNS_PER_ROUND) * 1000);
      }
    }
    const m = times.map(median);
    console.log(`batch ${B}, capacity ${C}: ` + graphs.map(([n], k) => `${n} ${m[k]!.toFixed(1)} µs (${(m[0]! / m[k]!).toFixed(3)})`).join('   '));
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
