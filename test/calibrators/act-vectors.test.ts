/**
 * ACT's spec test vectors (shared/specs/act.md §7), in the float64 reference and in the compiled
 * graph fragment (run by onnxruntime, fed by the calibrator's own writeInputs), to 1e-6.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../models/onnx/graph-builder.js';
import { FragmentHost } from '../../models/compiler/fragment-host.js';
import { DIM } from '../../models/compiler/hooks.js';
import { act, type ActConfig } from '../../calibrators/act.js';
import { sinkSet } from '../../calibrators/act-sinks.js';
import type { RowStep } from '../../calibrators/calibrator.js';
import type { DecoderConfig } from '../../models/checkpoint/decoder-weights.js';
import { officialPrefill, redistributeRow, sinksFromScores } from '../reference/act-reference.js';
import { oneRowInputFeeds } from '../helpers/fragment-feeds.js';

const TV1 = [
  [1.0, 0, 0, 0, 0],
  [0.7, 0.3, 0, 0, 0],
  [0.6, 0.1, 0.3, 0, 0],
  [0.5, 0.05, 0.35, 0.1, 0],
  [0.5, 0.05, 0.3, 0.1, 0.05],
];
const TV1_OUT = [
  [1, 0, 0, 0, 0],
  [0.88, 0.12, 0, 0, 0],
  [0.84, 0.04, 0.12, 0, 0],
  [0.7, 0.02, 0.14, 0.14, 0],
  [0.661538, 0.02, 0.12, 0.132308, 0.066154],
];
const TV4 = [
  [1, 0, 0],
  [0, 1, 0],
  [0, 0.5, 0.5],
];
/**
 * TV4 with a subnormal non-sink entry: S = [1, 2] and key 0 (spared) holds 1e-40 in row 2. Scaling
 * that by 1 + (1 − β)·0.999…/1e-40 overflows float32, so attune treats non-sink mass below the
 * smallest normal float (2^-126) as zero: the official fp16 code would hold it as exactly 0.
 */
const TV4_SUBNORMAL = [
  [1, 0, 0],
  [0, 1, 0],
  [1e-40, 0.5, 0.5],
];

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

describe('ACT test vectors: float64 reference', () => {
  it('TV1 prefill: scores, S = [1, 2], calibrated map', () => {
    const { out, sinks } = officialPrefill(TV1, 0.4, 0.1);
    assert.deepEqual(sinks, [1, 2]);
    out.forEach((r, i) => close(r, TV1_OUT[i]!, 1e-6, `row ${i}`));
    out.forEach((r) => assert.ok(Math.abs(r.reduce((a, b) => a + b, 0) - 1) < 1e-12));
  });
  it('TV3 decode: running sums give TV1 last row from rows 0..3 plus the new row', () => {
    const first = officialPrefill(TV1.slice(0, 4).map((r) => r.slice(0, 4)), 0.4, 0.1);
    assert.deepEqual(first.sinks, [1, 2]);
    first.out.forEach((r, i) => close(r, TV1_OUT[i]!.slice(0, 4), 1e-6, `prefill row ${i}`));
    const colsum = [0, 1, 2, 3, 4].map((j) => TV1.reduce((s, r) => s + r[j]!, 0));
    const sinks = sinksFromScores(colsum.map((c, j) => c / (5 - j)), 0.1);
    assert.deepEqual(sinks, [1, 2]);
    const row = [...TV1[4]!];
    redistributeRow(row, new Set(sinks), 0.4);
    close(row, TV1_OUT[4]!, 1e-6, 'decode row');
  });
  it('TV4: rows with no non-sink mass are left unchanged', () => {
    const { out, sinks } = officialPrefill(TV4, 0.4, 0.1);
    assert.deepEqual(sinks, [1, 2]);
    assert.deepEqual(out, TV4);
  });
  it('TV4 with subnormal non-sink mass counts it as none, as the graph does', () => {
    const { out, sinks } = officialPrefill(TV4_SUBNORMAL, 0.4, 0.1);
    assert.deepEqual(sinks, [1, 2]);
    assert.deepEqual(out, TV4_SUBNORMAL);
  });
});

/** A one-layer, one-head graph holding only ACT's fragment at the pattern hook. */
async function fragmentSession() {
  const config = { nHeads: 1, nLayers: 3 } as DecoderConfig;
  const g = new GraphBuilder('act_fragment');
  const host = new FragmentHost(g, config);
  const A = g.input('pattern', 'float32', [DIM.batch, 1, DIM.queries, DIM.keys]);
  const [fragment] = act.fragments({ name: 't', config, profile: {} });
  const out = fragment!.build(A, host.contextFor(2, 'attn.hook_pattern', 'act', A));
  g.output(out, 'float32', [DIM.batch, 1, DIM.queries, DIM.keys], 'calibrated');
  host.emitStateOutputs();
  const session = await ort.InferenceSession.create(g.toBytes());
  return { session, host };
}

async function runFragment(cfg: ActConfig | null, A: number[][], past: number, pastColsum: number[]) {
  const { session, host } = await fragmentSession();
  const T = A.length, K = A[0]!.length, C = K - T;
  const row: RowStep = {
    past, newTokens: T, promptLength: 99, isPrefill: past === 0, capacity: C, fedCap: C, paddedNewTokens: T, images: [],
    state: () => new Float32Array(0),
  };
  const values = new Map<string, ArrayLike<number> | number>();
  if (cfg) act.writeInputs(cfg, row, { set: (name, v) => void values.set(name, v) }, act.createMemo(cfg));
  const feeds: Record<string, ort.Tensor> = {
    pattern: new ort.Tensor('float32', Float32Array.from(A.flat()), [1, 1, T, K]),
    'act.colsum.2': new ort.Tensor('float32', Float32Array.from(pastColsum), [1, 1, 1, C]),
  };
  Object.assign(feeds, oneRowInputFeeds(host.rowInputs, values, (d) => (d === DIM.keys ? K : (d as number))));
  const out = await session.run(feeds);
  const calibrated = out.calibrated!.data as Float32Array;
  const colsum = out['act.colsum.2.update']!.data as Float32Array;
  return { rows: A.map((_, i) => Array.from(calibrated.subarray(i * K, (i + 1) * K))), colsum: Array.from(colsum) };
}

const cfg: ActConfig = { beta: 0.4, threshold: 0.1, heads: { 2: [0] }, queryHeads: 1 };

describe('ACT test vectors: the graph fragment', () => {
  it('TV1 prefill to 1e-6, with S = [1, 2] from the running sums', async () => {
    const { rows, colsum } = await runFragment(cfg, TV1, 0, []);
    rows.forEach((r, i) => close(r, TV1_OUT[i]!, 1e-6, `row ${i}`));
    close(colsum, [3.3, 0.5, 0.95, 0.2, 0.05], 1e-6, 'column sums');
    assert.deepEqual(sinkSet(colsum, 5, 0.1), [1, 2]);
    rows.forEach((r) => assert.ok(Math.abs(r.reduce((a, b) => a + b, 0) - 1) < 1e-6));
  });

  it('TV3 decode to 1e-6: a 4-row prefill, then row 4 through the running sums', async () => {
    const pre = await runFragment(cfg, TV1.slice(0, 4).map((r) => r.slice(0, 4)), 0, []);
    pre.rows.forEach((r, i) => close(r, TV1_OUT[i]!.slice(0, 4), 1e-6, `prefill row ${i}`));
    assert.deepEqual(sinkSet(pre.colsum, 4, 0.1), [1, 2]);
    const dec = await runFragment(cfg, [TV1[4]!], 4, pre.colsum);
    close(dec.rows[0]!, TV1_OUT[4]!, 1e-6, 'decode row');
    assert.ok(Math.abs(dec.rows[0]!.reduce((a, b) => a + b, 0) - 1) < 1e-6, 'no row sums above 1 (TV2 is not reproduced)');
  });

  it('TV4: rows with no non-sink mass come back unchanged, without NaN', async () => {
    const { rows } = await runFragment(cfg, TV4, 0, []);
    assert.deepEqual(rows, TV4);
  });

  it('an off row (identity feeds) passes the pattern through bit for bit', async () => {
    const { rows } = await runFragment(null, TV1, 0, []);
    assert.deepEqual(rows.map((r) => Float32Array.from(r)), TV1.map((r) => Float32Array.from(r)));
  });

  it('TV4 with subnormal non-sink mass: the row comes back unchanged, not Inf', async () => {
    const { rows } = await runFragment(cfg, TV4_SUBNORMAL, 0, []);
    assert.deepEqual(rows.map((r) => Float32Array.from(r)), TV4_SUBNORMAL.map((r) => Float32Array.from(r)));
  });

  it('never produces NaN or Inf for any beta in [0, 1] and tau in (0, 1], all-sink rows included', async () => {
    for (const A of [TV1, TV4, TV4_SUBNORMAL]) {
      for (const beta of [0, 0.4, 1]) {
        for (const threshold of [1e-6, 0.1, 1]) {
          const { rows } = await runFragment({ ...cfg, beta, threshold }, A, 0, []);
          assert.ok(rows.flat().every(Number.isFinite), `beta ${beta} tau ${threshold}`);
          rows.forEach((r) => assert.ok(Math.abs(r.reduce((a, b) => a + b, 0) - 1) < 1e-6));
        }
      }
    }
  });

  it('beta 1 fed to the fragment itself (not skipped as inactive) is bit-identical', async () => {
    const { rows } = await runFragment({ ...cfg, beta: 1 }, TV1, 0, []);
    assert.deepEqual(rows.map((r) => Float32Array.from(r)), TV1.map((r) => Float32Array.from(r)));
  });
});
