/**
 * VAR's spec test vectors (shared/specs/var.md §8) and unit checks (§9.3) in the float64 reference
 * and in the compiled graph fragments alone (run by onnxruntime, fed by the calibrator's own
 * writeInputs): sink detection from the layer input, the selection, the redistribution, rows that
 * sum to 1, exact gains, masked and empty slots, frozen sinks at decode, and identity settings.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../models/onnx/graph-builder.js';
import { FragmentHost } from '../../models/compiler/fragment-host.js';
import { DIM } from '../../models/compiler/hooks.js';
import { GEOMETRY, fillGeometry } from '../../models/compiler/step-geometry.js';
import { varCalibrator, type VarConfig } from '../../calibrators/var.js';
import type { ImageSpan, ModelFacts, RowStep } from '../../calibrators/calibrator.js';
import type { DecoderConfig } from '../../models/checkpoint/decoder-weights.js';
import { phi, varRow } from '../reference/var-reference.js';
import { oneRowInputFeeds } from '../helpers/fragment-feeds.js';

// §8: keys 0 BOS, 1 text, 2–5 visual, 6 text; sinks {0, 3}.
const IMAGES: ImageSpan[] = [{ image: 0, start: 2, length: 4 }];
const A = [0.3, 0.05, 0.1, 0.2, 0.15, 0.05, 0.15];
const A_OUT = [0.18, 0.05, 0.166667, 0.12, 0.25, 0.083333, 0.15];
const LOW_IMAGE = [0.55, 0.2, 0.03, 0.06, 0.045, 0.015, 0.1];
const VISUAL = new Set([2, 3, 4, 5]);
const SINKS = new Set([0, 3]);

// A 4-layer model of width 8: VAR's default layers are 2..L−2 = [2]. Sink dim 3; τ = 2.
const D = 8;
const SINK_DIM = 3;
const config = { dim: D, nHeads: 1, nKvHeads: 1, nLayers: 4 } as DecoderConfig;
const facts: ModelFacts = {
  name: 't', config, profile: { var: { sink_dims: [SINK_DIM], tau: 2 } },
  vision: { layers: 1, heads: 1, patches: 4, hasCls: true, featureBlock: 0, tokensPerImage: 4, tokensArePatches: true, imageTokenId: 0 },
};
const resolve = (v: Record<string, unknown> = {}) => varCalibrator.resolve(v, facts);

/** A layer-input row whose φ is √8 ≈ 2.83 (a sink at τ = 2) or 1 (not). */
const residRow = (sink: boolean) => Array.from({ length: D }, (_, d) => (sink && d === SINK_DIM ? 30 : 1));

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}
const bits = (rows: ArrayLike<number>[]) => rows.map((r) => Array.from(Float32Array.from(r)));
const sum = (r: ArrayLike<number>) => Array.from(r).reduce((a, b) => a + b, 0);

/** A one-head graph of layer 2 holding only VAR's two fragments. */
async function fragmentSession() {
  const g = new GraphBuilder('var_fragment');
  const host = new FragmentHost(g, config);
  const fragments = varCalibrator.fragments(facts);
  const resid = g.input('resid', 'float32', [DIM.batch, DIM.queries, D]);
  const pattern = g.input('pattern', 'float32', [DIM.batch, 1, DIM.queries, DIM.keys]);
  g.output(host.apply(fragments, 2, 'hook_resid_pre', resid), 'float32', [DIM.batch, DIM.queries, D], 'resid_out');
  g.output(host.apply(fragments, 2, 'attn.hook_pattern', pattern), 'float32', [DIM.batch, 1, DIM.queries, DIM.keys], 'calibrated');
  host.emitStateOutputs();
  return { session: await ort.InferenceSession.create(g.toBytes()), host };
}
let cached: Awaited<ReturnType<typeof fragmentSession>> | null = null;

interface Step {
  /** Layer-input rows of the new tokens. */
  resid: number[][];
  /** Attention rows of the new tokens over `[fedCap past slots | new]`. */
  pattern: number[][];
  past?: number;
  fedCap?: number;
  /** The frozen sink flags fed for the past slots. */
  pastSinks?: number[];
  prefill?: boolean;
}

async function runVar(cfg: VarConfig | null, step: Step) {
  cached ??= await fragmentSession();
  const { session, host } = cached;
  const T = step.pattern.length, K = step.pattern[0]!.length;
  const past = step.past ?? 0, C = step.fedCap ?? past;
  assert.equal(K, C + T);
  const row: RowStep = {
    past, newTokens: T, promptLength: step.prefill === false ? past : past + T, isPrefill: step.prefill !== false,
    capacity: C, fedCap: C, paddedNewTokens: T, images: IMAGES, state: () => new Float32Array(0),
  };
  const values = new Map<string, ArrayLike<number> | number>();
  if (cfg) varCalibrator.writeInputs(cfg, row, { set: (name, v) => void values.set(name, v) }, varCalibrator.createMemo(cfg));
  const geo = { rows: [{ past, newTokens: T, images: IMAGES }], newTokens: T, fedCap: C };
  const feeds: Record<string, ort.Tensor> = {
    resid: new ort.Tensor('float32', Float32Array.from(step.resid.flat()), [1, T, D]),
    pattern: new ort.Tensor('float32', Float32Array.from(step.pattern.flat()), [1, 1, T, K]),
    'var.sink.2': new ort.Tensor('float32', Float32Array.from(step.pastSinks ?? new Array(C).fill(0)), [1, 1, 1, C]),
    [GEOMETRY.keyIsImage.name]: new ort.Tensor('bool', fillGeometry('keyIsImage', geo, [1, K]) as Uint8Array, [1, K]),
  };
  Object.assign(feeds, oneRowInputFeeds(host.rowInputs, values, (d) => (d === DIM.queries ? T : (d as number))));
  const out = await session.run(feeds);
  const calibrated = out.calibrated!.data as Float32Array;
  return {
    rows: step.pattern.map((_, i) => Array.from(calibrated.subarray(i * K, (i + 1) * K))),
    resid: Array.from(out.resid_out!.data as Float32Array),
    newSinks: Array.from(out['var.sink.2.update']!.data as Float32Array),
    edited: Array.from(out['tap.var.edited.2']!.data as Float32Array),
  };
}

/** The §8 prompt at prefill: causal uniform rows before the image and inside it, then row 6 = `last`. */
function prefill(last: number[]) {
  const pattern = Array.from({ length: 7 }, (_, i) => (i === 6 ? last : Array.from({ length: 7 }, (_, j) => (j <= i ? 1 / (i + 1) : 0))));
  return { resid: [0, 1, 2, 3, 4, 5, 6].map((p) => residRow(SINKS.has(p))), pattern };
}

describe('VAR test vectors: float64 reference', () => {
  const knobs = { recycle: 0.4, minNonsinkRatio: 0.5, minImageAttention: 0.2 };
  it('§8: selected at ρ = 0.5 (sink ratio ≈ 0.4), budget 0.2, NS × 5/3, sum 1', () => {
    const row = [...A];
    const d = varRow(row, VISUAL, SINKS, knobs);
    assert.ok(d.selected);
    assert.ok(Math.abs(d.imageMass - 0.5) < 1e-12);
    assert.ok(Math.abs(d.sinkRatio - 0.2 / (0.5 + 4e-6)) < 1e-12);
    close(row, A_OUT, 1e-6, 'row');
    assert.ok(Math.abs(sum(row) - 1) < 1e-12);
  });
  it('§8: ρ = 0.8 leaves the row unchanged; image attention 0.15 < 0.2 leaves its row unchanged', () => {
    const r1 = [...A];
    assert.equal(varRow(r1, VISUAL, SINKS, { ...knobs, minNonsinkRatio: 0.8 }).selected, false);
    assert.deepEqual(r1, A);
    const r2 = [...LOW_IMAGE];
    assert.equal(varRow(r2, VISUAL, SINKS, knobs).selected, false);
    assert.deepEqual(r2, LOW_IMAGE);
  });
  it('a layer without visual sinks is skipped, even with a text sink (official logic.py:140)', () => {
    const row = [...A];
    assert.equal(varRow(row, VISUAL, new Set([0]), knobs).selected, false);
    assert.deepEqual(row, A);
  });
  it('φ: |x_d| / RMS(x) without gain, eps 1e-6', () => {
    assert.ok(Math.abs(phi(residRow(true), [SINK_DIM]) - 30 / Math.sqrt((7 + 900) / 8 + 1e-6)) < 1e-12);
    assert.ok(Math.abs(phi(residRow(false), [SINK_DIM]) - 1 / Math.sqrt(1 + 1e-6)) < 1e-12);
    assert.equal(phi(residRow(true), []), 0);
  });
});

describe('VAR test vectors: the graph fragments alone', () => {
  const cfg = resolve();

  it('defaults: p 0.4, ρ 0.5, pre-filter 0.2, τ and dims from the profile, layers 2..L−2', () => {
    assert.deepEqual(cfg, { recycleFraction: 0.4, minNonsinkRatio: 0.5, minImageAttention: 0.2, tau: 2, sinkDims: [3], includeLastLayer: false, layers: [2], nLayers: 4, dim: 8 });
    assert.deepEqual(resolve({ include_last_layer: true }).layers, [2, 3]);
  });

  it('§8 at prefill to 1e-6: sinks {0, 3} from the layer input, only the text row after the image edited, rows sum to 1', async () => {
    const step = prefill(A);
    const r = await runVar(cfg, step);
    assert.deepEqual(r.newSinks, [1, 0, 0, 1, 0, 0, 0], 'φ > τ on tokens 0 and 3');
    assert.deepEqual(r.resid, step.resid.flat(), 'the layer input passes through');
    assert.deepEqual(r.edited, [0, 0, 0, 0, 0, 0, 1], 'rows before the end of the image are never edited');
    close(r.rows[6]!, A_OUT, 1e-6, 'row 6');
    assert.deepEqual(bits(r.rows.slice(0, 6)), bits(step.pattern.slice(0, 6)), 'rows 0..5 bit-unchanged');
    r.rows.forEach((row, i) => assert.ok(Math.abs(sum(row) - 1) < 1e-6, `row ${i} sums to ${sum(row)}`));
  });

  it('exact gains: visual non-sinks all × the same 1 + Ω/Σ_NS (= 5/3), text non-sinks bit-unchanged, sinks × (1 − p)', async () => {
    const r = await runVar(cfg, prefill(A));
    const a = Float32Array.from(A);
    const out = r.rows[6]!;
    const gains = [2, 4, 5].map((j) => out[j]! / a[j]!);
    for (const gain of gains) close([gain], [5 / 3], 1e-6, 'NS gain');
    // One float32 gain g: each output is fl(a·g), so a·g is within half an ulp of the output.
    const g = Math.fround(1 + Math.fround(Math.fround(0.4 * Math.fround(0.5)) / Math.fround(0.3)));
    for (const j of [2, 4, 5]) assert.ok(Math.abs(Math.fround(a[j]! * g) - out[j]!) <= 2 ** -24 * out[j]!, `key ${j}`);
    for (const j of [1, 6]) assert.ok(Object.is(out[j], a[j]), `text key ${j} is bit-unchanged`);
    for (const j of [0, 3]) close([out[j]!], [0.6 * A[j]!], 1e-7, `sink ${j}`);
  });

  it('§8 unselected cases come back bit-unchanged: ρ = 0.8, and image attention 0.15 < 0.2', async () => {
    const high = await runVar(resolve({ min_nonsink_ratio: 0.8 }), prefill(A));
    assert.deepEqual(bits(high.rows), bits(prefill(A).pattern));
    assert.deepEqual(high.edited, [0, 0, 0, 0, 0, 0, 0]);
    const low = await runVar(cfg, prefill(LOW_IMAGE));
    assert.deepEqual(bits(low.rows), bits(prefill(LOW_IMAGE).pattern));
  });

  it('decode: sinks come from the frozen state, the new token is never a sink, empty slots stay 0 whatever their stale flags', async () => {
    // Past positions 0..5 in slots 0..5, two empty slots (6, 7) holding stale sink flags, the new
    // token (position 6, a would-be sink at the layer input) as key 8.
    const row = [...A.slice(0, 6), 0, 0, A[6]!];
    const r = await runVar(cfg, { resid: [residRow(true)], pattern: [row], past: 6, fedCap: 8, pastSinks: [1, 0, 0, 1, 0, 0, 1, 1], prefill: false });
    assert.deepEqual(r.newSinks, [0], 'generated tokens are never sinks');
    assert.deepEqual(r.edited, [1]);
    close(r.rows[0]!, [...A_OUT.slice(0, 6), 0, 0, A_OUT[6]!], 1e-6, 'decode row');
    assert.ok(Object.is(r.rows[0]![6], 0) && Object.is(r.rows[0]![7], 0), 'masked entries stay exactly 0');
    assert.ok(Math.abs(sum(r.rows[0]!) - 1) < 1e-6);
  });

  it('a layer whose frozen sinks hold no visual token is left untouched (a text sink alone does not count)', async () => {
    const r = await runVar(cfg, { resid: [residRow(false)], pattern: [A], past: 6, pastSinks: [1, 0, 0, 0, 0, 0], prefill: false });
    assert.deepEqual(bits(r.rows), bits([A]));
    assert.deepEqual(r.edited, [0]);
  });

  it('identity: recycle_fraction 0 fed to the fragment (not skipped as inactive) and an off row are bit-identical', async () => {
    assert.equal(varCalibrator.isActive(resolve({ recycle_fraction: 0 })), false);
    assert.equal(varCalibrator.isActive(resolve({ sink_dims: [] })), false);
    for (const c of [resolve({ recycle_fraction: 0 }), null]) {
      const step = prefill(A);
      const r = await runVar(c, step);
      assert.deepEqual(bits(r.rows), bits(step.pattern));
      if (!c) assert.deepEqual(r.newSinks, [0, 0, 0, 0, 0, 0, 0], 'an off row detects nothing');
    }
  });

  it('no visual non-sink mass: the row is unchanged, not NaN (all visual keys sinks, or non-sink mass subnormal)', async () => {
    const allSinks = [0, 1, 2, 3, 4, 5, 6].map((p) => residRow(p === 0 || VISUAL.has(p)));
    const r1 = await runVar(resolve({ min_nonsink_ratio: 0 }), { resid: allSinks, pattern: prefill(A).pattern });
    assert.deepEqual(bits([r1.rows[6]!]), bits([A]));
    const subnormal = [0.3, 0.05, 1e-40, 0.5, 0, 0, 0.15];
    const r2 = await runVar(resolve({ min_nonsink_ratio: 0 }), prefill(subnormal));
    assert.deepEqual(bits([r2.rows[6]!]), bits([subnormal]));
  });

  it('never NaN or Inf, rows sum to 1, for extreme knobs', async () => {
    for (const recycle_fraction of [0.01, 0.4, 1]) {
      for (const min_nonsink_ratio of [0, 0.5, 1]) {
        for (const min_image_attention of [0, 0.2, 1]) {
          for (const last of [A, LOW_IMAGE]) {
            const r = await runVar(resolve({ recycle_fraction, min_nonsink_ratio, min_image_attention }), prefill(last));
            const what = `p ${recycle_fraction} ρ ${min_nonsink_ratio} pre ${min_image_attention}`;
            assert.ok(r.rows.flat().every(Number.isFinite), what);
            r.rows.forEach((row) => assert.ok(Math.abs(sum(row) - 1) < 1e-6, what));
            const ref = [...last];
            const d = varRow(ref, VISUAL, SINKS, { recycle: recycle_fraction, minNonsinkRatio: min_nonsink_ratio, minImageAttention: min_image_attention });
            assert.equal(r.edited[6], d.selected ? 1 : 0, what);
            close(r.rows[6]!, ref, 1e-6, what);
          }
        }
      }
    }
  });
});
