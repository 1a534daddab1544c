/**
 * VHR's selection test vectors (shared/specs/vhr.md §9: the outlier filter on and off, the std > 1
 * guard on and off, ties at the lower median) and its distance modes, in the float64 reference and
 * through the compiled graph fragment alone (run by onnxruntime, fed by the calibrator's own
 * writeInputs), plus the fragment's scaling: every position of the selected heads × α, the other
 * heads, decode steps (frozen heads from state) and rows with VHR off passed through bit for bit.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../models/onnx/graph-builder.js';
import { FragmentHost } from '../../models/compiler/fragment-host.js';
import { DIM } from '../../models/compiler/hooks.js';
import { GEOMETRY } from '../../models/compiler/step-geometry.js';
import type { DecoderConfig } from '../../models/checkpoint/decoder-weights.js';
import type { ModelFacts, RowStep, VisionFacts } from '../../calibrators/calibrator.js';
import { tapOutputName } from '../../models/compiler/hooks.js';
import { inputNames, tapNames, vhr, type VhrConfig } from '../../calibrators/vhr.js';
import { headDistance, selectHeads } from '../reference/vhr-reference.js';

const H = 4, HD = 2;
const VHD = [0.5, 1.0, 2.0, 9.0];
const TA = [1, 1, 1, 10];
/** O_T with ‖O_T[h]‖² = TA exactly, and with-image outputs O_T + d with ‖d‖² = VHD exactly (for `scale` 1). */
const TEXT = [[1, 0], [1, 0], [1, 0], [3, 1]];
const OFFSETS = [[0.5, 0.5], [1, 0], [1, 1], [3, 0]];
const withImage = (scale = 1) => TEXT.map((t, h) => t.map((x, d) => x + OFFSETS[h]![d]! * scale));

const VISION = { layers: 1, heads: 1, patches: 1, hasCls: true, featureBlock: 0, tokensPerImage: 1, tokensArePatches: true, imageTokenId: 0 } satisfies VisionFacts;
const FACTS: ModelFacts = { name: 'vectors', config: { nLayers: 1, nHeads: H, headDim: HD } as DecoderConfig, profile: {}, vision: VISION };
const resolve = (v: Record<string, unknown>): VhrConfig => vhr.resolve({ layers: [0], ...v }, FACTS);

describe('VHR test vectors: float64 reference', () => {
  const opts = (outlierFilter: boolean, outlierGuard: boolean) => ({ outlierFilter, outlierGuard });
  it('filter on (guard off): head 3 exceeds both mean + std and is zeroed; H = {1, 2}', () => {
    const s = selectHeads(VHD, TA, opts(true, false));
    assert.deepEqual(s.outliers, [3]);
    assert.deepEqual(s.filtered, [0.5, 1, 2, 0]);
    assert.equal(s.median, 0.5);
    assert.deepEqual(s.heads, [1, 2]);
  });
  it('filter off: the lower median of [0.5, 1, 2, 9] is 1; H = {2, 3}', () => {
    const s = selectHeads(VHD, TA, opts(false, false));
    assert.equal(s.median, 1);
    assert.deepEqual(s.heads, [2, 3]);
  });
  it('guard: std 3.97 > 1 lets the filter run; at a tenth the std is 0.397 and the guard skips it', () => {
    assert.deepEqual(selectHeads(VHD, TA, opts(true, true)).heads, [1, 2]);
    const tenth = VHD.map((v) => v / 10);
    assert.deepEqual(selectHeads(tenth, TA, opts(true, true)).heads, [2, 3]);
    assert.deepEqual(selectHeads(tenth, TA, opts(true, false)).heads, [1, 2]);
  });
  it('ties at the median are not selected', () => {
    assert.deepEqual(selectHeads([1, 2, 2, 3], [1, 1, 1, 1], opts(true, false)).heads, [3]);
    assert.deepEqual(selectHeads([2, 2, 2, 2], [1, 1, 1, 1], opts(true, false)).heads, []);
  });
  it('distance: o_v = [3, 4], o_T = [0, 0] gives squared L2 25 and L2 5', () => {
    assert.equal(headDistance([3, 4], [0, 0], 'sq_l2'), 25);
    assert.equal(headDistance([3, 4], [0, 0], 'l2'), 5);
  });
});

interface FragmentRow {
  cfg: VhrConfig | null;
  /** [H][T][hd] */
  z: number[][][];
  /** O_T, [H][hd] (the prepass's tap); needed on the selecting step. */
  text?: number[][];
  /** A prefill of the whole prompt (selects), or a decode step reading the gains from state. */
  select: boolean;
  /** The per-head gains in state before the step (a new slot's: all 1). */
  gains?: number[];
}

interface FragmentResult {
  z: number[][][];
  gains: number[];
  vhd: number[];
  zLast: number[][];
}

describe('VHR test vectors: the graph fragment in onnxruntime', () => {
  let session: ort.InferenceSession;
  let host: FragmentHost;
  before(async () => {
    const g = new GraphBuilder('vhr_fragment');
    host = new FragmentHost(g, FACTS.config);
    const z = g.input('z', 'float32', [DIM.batch, H, DIM.queries, HD]);
    const [fragment] = vhr.fragments(FACTS);
    const out = fragment!.build(z, host.contextFor(0, 'attn.hook_z', 'vhr', z));
    g.output(out, 'float32', [DIM.batch, H, DIM.queries, HD], 'scaled');
    host.emitStateOutputs();
    session = await ort.InferenceSession.create(g.toBytes());
  });

  /** One call over a batch of rows, each fed by vhr.writeInputs exactly as the engine feeds it. */
  async function run(rows: FragmentRow[]): Promise<FragmentResult[]> {
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.z[0]!.length));
    const feeds: Record<string, ort.Tensor> = {};
    const z = new Float32Array(B * H * T * HD);
    const last = new Uint8Array(B * T);
    const state = new Float32Array(B * H).fill(host.states.find((st) => st.name === inputNames.headGain)!.initial!);
    rows.forEach((r, b) => {
      const n = r.z[0]!.length;
      r.z.forEach((rowsOfHead, h) => rowsOfHead.forEach((v, t) => z.set(v, ((b * H + h) * T + t) * HD)));
      last[b * T + n - 1] = 1;
      if (r.gains) state.set(r.gains, b * H);
    });
    feeds.z = new ort.Tensor('float32', z, [B, H, T, HD]);
    feeds[GEOMETRY.lastQuery.name] = new ort.Tensor('bool', last, [B, T]);
    feeds[inputNames.headGain] = new ort.Tensor('float32', state, [B, 1, H, 1, 1]);
    for (const spec of host.rowInputs) {
      const dims = spec.dims as number[];
      const per = dims.reduce((a, d) => a * d, 1);
      const data = new Float32Array(B * per).fill(spec.identity);
      rows.forEach((r, b) => {
        if (!r.cfg) return;
        const n = r.z[0]!.length;
        const step: RowStep = {
          past: r.select ? 0 : 10, newTokens: n, promptLength: r.select ? n : 10, isPrefill: r.select, images: [],
          capacity: 0, fedCap: 0, paddedNewTokens: T, state: () => new Float32Array(0),
        };
        const memo = { ...vhr.createMemo(r.cfg), text: r.text ? Float32Array.from(r.text.flat()) : null };
        vhr.writeInputs(r.cfg, step, { set: (name, v) => name === spec.name && data.set(typeof v === 'number' ? new Array(per).fill(v) : v, b * per) }, memo);
      });
      feeds[spec.name] = spec.dtype === 'bool' ? new ort.Tensor('bool', Uint8Array.from(data), [B, ...dims]) : new ort.Tensor('float32', data, [B, ...dims]);
    }
    const out = await session.run(feeds);
    const scaled = out.scaled!.data as Float32Array;
    const gains = out[`${inputNames.headGain}.update`]!.data as Float32Array;
    const vhd = out[tapOutputName('vhr', tapNames.vhd)]!.data as Float32Array;
    const zLast = out[tapOutputName('vhr', tapNames.zLast)]!.data as Float32Array;
    return rows.map((r, b) => ({
      z: r.z.map((rowsOfHead, h) => rowsOfHead.map((_, t) => Array.from(scaled.subarray(((b * H + h) * T + t) * HD, ((b * H + h) * T + t + 1) * HD)))),
      gains: Array.from(gains.subarray(b * H, (b + 1) * H)),
      vhd: Array.from(vhd.subarray(b * H, (b + 1) * H)),
      zLast: Array.from({ length: H }, (_, h) => Array.from(zLast.subarray((b * H + h) * HD, (b * H + h + 1) * HD))),
    }));
  }

  /** A prompt of three rows whose last row is the with-image output. */
  const prompt = (last: number[][]) => last.map((v, h) => [[h, -1], [0.25, 2], v]);
  const selected = (gains: number[]) => gains.flatMap((x, h) => (x !== 1 ? [h] : []));
  const selectRow = (cfg: VhrConfig, scale = 1): FragmentRow => ({ cfg, z: prompt(withImage(scale)), text: TEXT, select: true });

  it('computes VHD at the last row against O_T: the spec vectors exactly', async () => {
    const [r] = await run([selectRow(resolve({}))]);
    assert.deepEqual(r!.vhd, VHD);
    assert.deepEqual(r!.zLast, withImage());
  });

  it('filter on, guard off → {1, 2}; filter off → {2, 3}; guard on (std 3.97) → {1, 2}', async () => {
    const rs = await run([selectRow(resolve({ outlier_guard: false })), selectRow(resolve({ outlier_filter: false })), selectRow(resolve({}))]);
    assert.deepEqual(rs.map((r) => selected(r.gains)), [[1, 2], [2, 3], [1, 2]]);
  });

  it('guard at a tenth of the distances (std 0.397): on skips the filter → {2, 3}; off zeroes head 3 → {1, 2}', async () => {
    const scale = 1 / Math.sqrt(10);
    const rs = await run([selectRow(resolve({}), scale), selectRow(resolve({ outlier_guard: false }), scale)]);
    rs.forEach((r) => VHD.forEach((v, h) => assert.ok(Math.abs(r.vhd[h]! - v / 10) < 1e-6)));
    assert.deepEqual(rs.map((r) => selected(r.gains)), [[2, 3], [1, 2]]);
  });

  it('ties at the lower median are not selected', async () => {
    const text = [[1, 0], [1, 0], [1, 0], [1, 0]];
    const at = (vhd: number[]) => text.map((t, h) => [t[0]! + Math.sqrt(vhd[h]!), t[1]!]);
    const rs = await run([
      { cfg: resolve({ outlier_guard: false }), z: prompt(at([1, 4, 4, 9])), text, select: true },
      { cfg: resolve({ outlier_guard: false }), z: prompt(at([4, 4, 4, 4])), text, select: true },
    ]);
    assert.deepEqual(rs.map((r) => r.vhd), [[1, 4, 4, 9], [4, 4, 4, 4]]);
    assert.deepEqual(rs.map((r) => selected(r.gains)), [[3], []]);
  });

  it('distance: o_v = [3, 4] against o_T = [0, 0] is 25 squared and 5 plain', async () => {
    const text = [[0, 0], [0, 0], [0, 0], [0, 0]];
    const z = prompt([[3, 4], [0, 1], [1, 0], [0, 0]]);
    const [sq, l2] = await run([{ cfg: resolve({}), z, text, select: true }, { cfg: resolve({ distance: 'l2' }), z, text, select: true }]);
    assert.deepEqual(sq!.vhd, [25, 1, 1, 0]);
    assert.deepEqual(l2!.vhd, [5, 1, 1, 0]);
  });

  it('scales every row of the selected heads by α, leaves the others bit-identical, and passes rows with VHR off through', async () => {
    const z = prompt(withImage());
    const [on, off] = await run([selectRow(resolve({ alpha: 1.5, outlier_guard: false })), { cfg: null, z, select: false }]);
    assert.deepEqual(on!.gains, [1, 1.5, 1.5, 1]);
    assert.deepEqual(off!.gains, [1, 1, 1, 1], 'a row without VHR keeps its slot\'s initial gains');
    on!.z.forEach((rowsOfHead, h) => rowsOfHead.forEach((v, t) => {
      const original = Float32Array.from(z[h]![t]!);
      assert.deepEqual(v, Array.from([1, 2].includes(h) ? original.map((x) => Math.fround(x * 1.5)) : original), `head ${h} row ${t}`);
    }));
    assert.deepEqual(off!.z, z.map((rowsOfHead) => rowsOfHead.map((v) => Array.from(Float32Array.from(v)))));
  });

  it('decode steps read the frozen gains from state, whatever the new row\'s distances, and keep the state', async () => {
    const cfg = resolve({ alpha: 2, outlier_guard: false });
    const step = [[[5, 5]], [[1, 1]], [[0.5, 0]], [[2, 2]]];
    const [r] = await run([{ cfg, z: step, select: false, gains: [2, 1, 1, 2] }]);
    assert.deepEqual(r!.gains, [2, 1, 1, 2]);
    assert.deepEqual(r!.z, [[[10, 10]], [[1, 1]], [[0.5, 0]], [[4, 4]]]);
  });

  it('feeds α only for the request\'s layers (a layer outside its list keeps gain 1 on every head)', async () => {
    const facts2: ModelFacts = { ...FACTS, config: { nLayers: 2, nHeads: H, headDim: HD } as DecoderConfig };
    const cfg = vhr.resolve({ layers: [1] }, facts2);
    const fed = new Map<string, ArrayLike<number> | number>();
    vhr.writeInputs(cfg, { past: 0, newTokens: 1, promptLength: 1, isPrefill: true, images: [], capacity: 0, fedCap: 0, paddedNewTokens: 1, state: () => new Float32Array(0) }, { set: (n, v) => void fed.set(n, v) }, { ...vhr.createMemo(cfg), text: new Float32Array(2 * H * HD) });
    assert.deepEqual(Array.from(fed.get(inputNames.layerGain) as Float32Array), [1, 2]);
  });
});
