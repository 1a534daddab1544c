/**
 * PAINT's spec test vectors (shared/specs/paint.md §9, §10.3) through the graph fragments alone in
 * onnxruntime (the score edit fed by the calibrator's own writeInputs; the selection taps on a given
 * attention map), through the TypeScript selection, and through the float64 reference, to 1e-6.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../models/onnx/graph-builder.js';
import { FragmentHost } from '../../models/compiler/fragment-host.js';
import { DIM } from '../../models/compiler/hooks.js';
import { GEOMETRY, fillGeometry, type ImageSpan } from '../../models/compiler/step-geometry.js';
import type { VisionConfig } from '../../models/checkpoint/vision-weights.js';
import type { DecoderConfig } from '../../models/checkpoint/decoder-weights.js';
import { guideLogits, paint, type PaintConfig } from '../../calibrators/paint.js';
import { iqrOutlierCount, percentileLinear, selectImageTokens, topK, type ImageSelection } from '../../calibrators/paint-selection.js';
import type { ModelFacts, RowStep } from '../../calibrators/calibrator.js';
import { editRow, guidedScores, iqrOutliers, patchColumnSums, referenceSelection, releasedSpatialScores } from '../reference/paint-reference.js';
import { oneRowInputFeeds } from '../helpers/fragment-feeds.js';

const EDIT_IN = [2.0, 0.5, 1.0, -1.0, -0.5, 0.0];
const EDIT_OUT = [2.0, 0.5, 1.7, -1.0, -0.3, 0.0];
const SOFTMAX_BEFORE = [0.538150, 0.120078, 0.197974, 0.026793, 0.044174, 0.072831];
const SOFTMAX_AFTER = [0.444577, 0.099199, 0.329351, 0.022134, 0.044573, 0.060167];
const IQR_SCORES = [1, 2, 2, 3, 3, 3, 4, 4, 5, 20];
/** §9 spatial fix: two heads over [CLS, p0, p1]. */
const A_FIRST = [
  [[0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2]],
  [[0.6, 0.2, 0.2], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]],
];

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

const softmax = (row: ArrayLike<number>) => {
  const m = Math.max(...Array.from(row));
  const e = Array.from(row, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

/** A model with one head and 3 layers (PAINT in layer 2), and a 6-patch tower. */
function facts(profile: ModelFacts['profile'] = {}, nHeads = 1): ModelFacts {
  return {
    name: 't',
    config: { nLayers: 3, nHeads } as DecoderConfig,
    profile,
    vision: { layers: 1, heads: 2, patches: 6, hasCls: true, featureBlock: 0, tokensPerImage: 6, tokensArePatches: true, imageTokenId: 0 },
  };
}

interface FragmentRun {
  /** Edited scores, per head then row. */
  rows: number[][][];
}

/**
 * PAINT's score fragment alone at layer 2: scores [1, H, T, K] in, edited scores out; every input fed
 * as the engine feeds it (geometry from the row's step, control inputs from paint.writeInputs).
 */
async function runEdit(cfg: PaintConfig | null, scores: number[][][], step: { past: number; newTokens: number; fedCap: number; promptLength: number; isPrefill: boolean }, selection: ImageSelection, model = facts()): Promise<FragmentRun> {
  const H = scores.length, T = scores[0]!.length, K = scores[0]![0]!.length;
  const g = new GraphBuilder('paint_fragment');
  const host = new FragmentHost(g, model.config);
  const x = g.input('scores', 'float32', [DIM.batch, H, DIM.queries, DIM.keys]);
  const [fragment] = paint.fragments(model);
  const out = fragment!.build(x, host.contextFor(2, 'attn.hook_attn_scores', 'paint', x));
  g.output(out, 'float32', [DIM.batch, H, DIM.queries, DIM.keys], 'edited');
  const session = await ort.InferenceSession.create(g.toBytes());

  const images: ImageSpan[] = [{ image: 0, start: 0, length: 6 }];
  const row: RowStep = { ...step, paddedNewTokens: T, capacity: step.fedCap, images, state: () => new Float32Array(0) };
  assert.equal(K, step.fedCap + T);
  const values = new Map<string, ArrayLike<number> | number>();
  if (cfg) {
    const memo = paint.createMemo(cfg);
    memo.images = [selection];
    paint.writeInputs(cfg, row, { set: (name, v) => void values.set(name, v) }, memo);
  }
  const feeds: Record<string, ort.Tensor> = { scores: new ort.Tensor('float32', Float32Array.from(scores.flat(2)), [1, H, T, K]) };
  for (const which of host.geometry) {
    const entry = GEOMETRY[which];
    const dims = entry.dims.map((d) => (d === DIM.batch ? 1 : d === DIM.queries ? T : K));
    const data = fillGeometry(which, { rows: [{ past: step.past, newTokens: step.newTokens, images }], newTokens: T, fedCap: step.fedCap }, dims);
    feeds[entry.name] = new ort.Tensor(entry.dtype === 'bool' ? 'bool' : 'float32', data, dims);
  }
  Object.assign(feeds, oneRowInputFeeds(host.rowInputs, values, (d) => (d === DIM.keys ? K : (d as number))));
  const edited = (await session.run(feeds)).edited!.data as Float32Array;
  return { rows: Array.from({ length: H }, (_, h) => Array.from({ length: T }, (_, t) => Array.from(edited.subarray((h * T + t) * K, (h * T + t + 1) * K)))) };
}

const cfgOf = (v: Record<string, unknown>, model = facts()) => paint.resolve(v, model);
/** §9: local key 2 (α), summary key 4 (β). */
const VECTOR_SELECTION: ImageSelection = { local: [2], summary: [4], spatial: [] };
/** A decode step whose new token is key 5 (position 5): keys 0..4 are the past. */
const DECODE = { past: 5, newTokens: 1, fedCap: 5, promptLength: 5, isPrefill: false };

describe('PAINT test vectors: the score edit', () => {
  it('§9 edit in the float64 reference, with its softmax before and after', () => {
    const row = [...EDIT_IN];
    editRow(row, new Map([[2, 0.7], [4, 0.4]]));
    close(row, EDIT_OUT, 1e-12, 'edited');
    close(softmax(EDIT_IN), SOFTMAX_BEFORE, 1e-6, 'softmax before');
    close(softmax(row), SOFTMAX_AFTER, 1e-6, 'softmax after');
  });

  it('§9 edit through the graph fragment at a decode step, fed by writeInputs', async () => {
    const { rows } = await runEdit(cfgOf({}), [[EDIT_IN]], DECODE, VECTOR_SELECTION);
    close(rows[0]![0]!, EDIT_OUT, 1e-6, 'edited');
    close(softmax(rows[0]![0]!), SOFTMAX_AFTER, 1e-6, 'softmax after');
  });

  it('only the last real query row changes; masked keys stay −∞, no NaN, and softmax rows sum to 1', async () => {
    // A continuing prefill chunk of 3 rows at past 3 with capacity 5: past slots 3 and 4 are empty (−∞),
    // and the causal mask hides later new keys from earlier rows.
    const step = { past: 3, newTokens: 3, fedCap: 5, promptLength: 6, isPrefill: true };
    const M = -Infinity;
    const scores = [
      [
        [0.3, -0.2, 1.1, M, M, 0.4, M, M],
        [0.1, 0.9, -1.5, M, M, 0.2, 0.7, M],
        [2.0, 0.5, 1.0, M, M, -1.0, -0.5, 0.0],
      ],
      [
        [1.3, 0.2, -0.1, M, M, 0.8, M, M],
        [-0.4, 0.6, 0.5, M, M, 1.2, -0.7, M],
        [0.2, -0.3, 2.5, M, M, 0.9, 0.1, -2.0],
      ],
    ];
    // Local patch 2 (past key 2) and summary patch 4 (position 4: new key 1, index 5 + 1 = 6).
    const { rows } = await runEdit(cfgOf({}, facts({}, 2)), scores, step, VECTOR_SELECTION, facts({}, 2));
    for (let h = 0; h < 2; h++) {
      for (let t = 0; t < 2; t++) assert.deepEqual(rows[h]![t], scores[h]![t]!.map(Math.fround), `head ${h} row ${t} is untouched`);
      const expected = [...scores[h]![2]!];
      editRow(expected, new Map([[2, 0.7], [6, 0.4]]));
      close(rows[h]![2]!.filter(Number.isFinite), expected.filter(Number.isFinite), 1e-6, `head ${h} last row`);
      assert.deepEqual(rows[h]![2]!.map((v) => v === -Infinity), expected.map((v) => v === -Infinity), 'masked keys stay masked');
      for (const r of rows[h]!) {
        const p = softmax(r);
        assert.ok(p.every(Number.isFinite), 'no NaN');
        assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6);
      }
    }
  });

  it('prefill steps before the last prompt token, and every prefill step without edit_prefill, are not edited', async () => {
    const notLast = { past: 0, newTokens: 6, fedCap: 0, promptLength: 9, isPrefill: true };
    const scores = [[...Array.from({ length: 5 }, () => EDIT_IN.map(() => -Infinity)), EDIT_IN]];
    const a = await runEdit(cfgOf({}), scores, notLast, VECTOR_SELECTION);
    assert.deepEqual(a.rows[0], scores[0]);
    const last = { ...notLast, promptLength: 6 };
    const b = await runEdit(cfgOf({ edit_prefill: false }), scores, last, VECTOR_SELECTION);
    assert.deepEqual(b.rows[0], scores[0]);
    const c = await runEdit(cfgOf({}), scores, last, VECTOR_SELECTION);
    close(c.rows[0]![5]!, EDIT_OUT, 1e-6, 'the last prompt row is edited with edit_prefill');
  });

  it('identity: alpha 0 and beta 0 fed to the fragment itself, off rows (identity feeds) and an empty layer set are bit-identical', async () => {
    const bits = (r: FragmentRun) => r.rows.map((h) => h.map((row) => Float32Array.from(row)));
    const want = [[Float32Array.from(EDIT_IN)]];
    assert.deepEqual(bits(await runEdit(null, [[EDIT_IN]], DECODE, VECTOR_SELECTION)), want);
    const zero = cfgOf({ alpha: 0, beta: 0 });
    assert.equal(paint.isActive(zero), false);
    assert.deepEqual(bits(await runEdit(zero, [[EDIT_IN]], DECODE, VECTOR_SELECTION)), want);
    const noLayers = cfgOf({ layers: [] });
    assert.equal(paint.isActive(noLayers), false);
    assert.deepEqual(bits(await runEdit(noLayers, [[EDIT_IN]], DECODE, VECTOR_SELECTION)), want);
    assert.equal(paint.isActive(cfgOf({ alpha: 0, beta: 0, guidance: true })), true, 'guidance alone is active');
  });

  it('head modulation (extension): the boost is scaled per [layer, head] by the profile table', async () => {
    const model = facts({ paint: { head_weights: { 2: [0.5, 0] } } }, 2);
    const cfg = cfgOf({ head_modulation: true }, model);
    const { rows } = await runEdit(cfg, [[EDIT_IN], [EDIT_IN]], DECODE, VECTOR_SELECTION, model);
    const half = [...EDIT_IN];
    editRow(half, new Map([[2, 0.7], [4, 0.4]]), 0.5);
    close(rows[0]![0]!, half, 1e-6, 'head 0 at weight 0.5');
    assert.deepEqual(rows[1]![0], EDIT_IN, 'head 1 at weight 0');
    // Off by default: the same model without the flag edits every head fully.
    const plain = await runEdit(cfgOf({}, model), [[EDIT_IN], [EDIT_IN]], DECODE, VECTOR_SELECTION, model);
    close(plain.rows[1]![0]!, EDIT_OUT, 1e-6, 'head 1 without modulation');
  });
});

describe('PAINT test vectors: selection', () => {
  it('§9 IQR count: q1 2.25, q3 4.0, bound 6.625, n_sum 1 (numpy linear percentiles)', () => {
    assert.equal(percentileLinear(IQR_SCORES, 25), 2.25);
    assert.equal(percentileLinear(IQR_SCORES, 75), 4.0);
    assert.equal(iqrOutlierCount(IQR_SCORES), 1);
    assert.deepEqual(iqrOutliers(IQR_SCORES), [9]);
    // numpy's lerp from the upper neighbour for fractions ≥ 0.5, and the ends.
    assert.equal(percentileLinear([0, 1], 75), 0.75);
    assert.equal(percentileLinear([5], 25), 5);
    assert.equal(percentileLinear([3, 1, 2], 100), 3);
  });

  it('§9 spatial fix: released row sums carry no signal, fixed column sums [1.1, 1.0] pick p0; local scores [0.7, 0.5]', () => {
    const attn = A_FIRST.map((head) => head.map((r) => Float64Array.from(r)));
    close(releasedSpatialScores(attn), [1, 1, 1], 1e-12, 'released row sums');
    close(patchColumnSums(attn), [1.1, 1.0], 1e-12, 'fixed column sums');
    const sel = referenceSelection([attn], 0, 0.5, 0.5);
    assert.deepEqual(sel.spatial, [0]);
    const ts = selectImageTokens({ local: [0.7, 0.5], summary: [0.7, 0.5], spatial: [1.1, 1.0] }, { localRatio: 0.5, spatialRatio: 0.5 });
    assert.deepEqual(ts.spatial, [0]);
  });

  it('§9 spatial fix and local scores through the selection taps in onnxruntime', async () => {
    const [tap] = paint.visionTaps!(facts());
    const g = new GraphBuilder('paint_taps');
    const x = g.input('pattern', 'float32', ['images', 2, 3, 3]);
    const outputs: string[] = [];
    tap!.tap(x, {
      g, config: { featureLayer: 1 } as VisionConfig, layer: 0, hook: 'vision.blocks.0.attn.hook_pattern', owner: 'paint',
      tap(name, value, dims) {
        g.output(value, 'float32', ['images', ...dims], `tap.paint.${name}`);
        outputs.push(name);
      },
    });
    assert.deepEqual(outputs, ['cls.0', 'colsum.0']);
    const session = await ort.InferenceSession.create(g.toBytes());
    const out = await session.run({ pattern: new ort.Tensor('float32', Float32Array.from(A_FIRST.flat(2)), [1, 2, 3, 3]) });
    close(out['tap.paint.cls.0']!.data as Float32Array, [0.7, 0.5], 1e-6, 'local scores');
    const colsum = out['tap.paint.colsum.0']!.data as Float32Array;
    close(colsum, [1.1, 1.0], 1e-6, 'column sums');
    assert.deepEqual(topK(colsum, 1), [0], 'top-1 spatial = p0');
  });

  it('overlap gets beta: a local patch that is also a summary outlier is boosted by β only; counts are ⌊P·ratio⌋ and n_sum', async () => {
    // 8 patches: local scores rank 5, 3, 1, 0 highest; patch 5 is the one summary outlier.
    const local = [0.5, 0.6, 0.1, 0.8, 0.2, 0.9, 0.3, 0.05];
    const summary = [1, 1, 1, 1, 1, 9, 1, 1];
    const sel = selectImageTokens({ local, summary, spatial: new Array(8).fill(1) }, { localRatio: 0.5, spatialRatio: 0 });
    assert.deepEqual(sel, { local: [0, 1, 3], summary: [5], spatial: [] });
    assert.equal(topK(local, Math.trunc(8 * 0.5)).length, 4, '⌊P·local_ratio⌋ before the overlap is removed');
    // The same in the fragment: patch 5 (new key of a 6-key decode step) gets β, never α + β.
    const row = [1.0, -1.0, 0.5, 2.0, 0.3, 0.0, -0.5, 0.25];
    const { rows } = await runEdit(cfgOf({}, { ...facts(), vision: { ...facts().vision!, patches: 8, tokensPerImage: 8 } }), [[row]],
      { past: 7, newTokens: 1, fedCap: 7, promptLength: 7, isPrefill: false }, sel);
    const expected = [...row];
    editRow(expected, new Map([[0, 0.7], [1, 0.7], [3, 0.7], [5, 0.4]]));
    close(rows[0]![0]!, expected, 1e-6, 'edited');
  });
});

describe('PAINT test vectors: guidance', () => {
  const cond = Float32Array.from([2.0, 1.5, -1.0, 0.3, -3.0]);
  const uncond = Float32Array.from([1.0, 2.0, 0.5, -0.2, 0.0]);

  it('equals the float64 reference: γ(lp_c − lp_u) + lp_u with the log(cutoff) + max cut', () => {
    const own = Float32Array.from(cond);
    guideLogits(own, uncond, 1.1, 0.1);
    const ref = guidedScores(cond, uncond, 1.1, 0.1);
    assert.deepEqual(Array.from(own, (v) => v === -Infinity), Array.from(ref, (v) => v === -Infinity));
    close(Array.from(own).filter(Number.isFinite), Array.from(ref).filter(Number.isFinite), 1e-6, 'guided');
    // p_c of tokens 2 and 4 is below 0.1 · max p_c: they are cut.
    assert.deepEqual(Array.from(own, (v) => v === -Infinity), [false, false, true, false, true]);
  });

  it('with γ = 1 the result is lp_c (to rounding) on the tokens that pass the cut', () => {
    const own = Float32Array.from(cond);
    guideLogits(own, uncond, 1, 0.1);
    const lp = Array.from(cond, (v) => v - Math.log(Array.from(cond).reduce((s, x) => s + Math.exp(x), 0)));
    own.forEach((v, i) => (Number.isFinite(v) ? assert.ok(Math.abs(v - lp[i]!) < 1e-6) : assert.ok(lp[i]! < Math.log(0.1) + Math.max(...lp))));
  });

  it('mixLogits counts guided steps and refuses a missing companion', () => {
    const cfg = cfgOf({ guidance: { gamma: 2 } });
    assert.deepEqual(cfg.guidance, { gamma: 2, cutoff: 0.1 });
    assert.equal(paint.extraSlots!(cfg), 1);
    const memo = paint.createMemo(cfg);
    paint.mixLogits!(cfg, memo, Float32Array.from(cond), new Map([['uncond', uncond]]));
    assert.equal(memo.guidedSteps, 1);
    assert.throws(() => paint.mixLogits!(cfg, memo, Float32Array.from(cond), new Map()), /companion/);
  });
});
