/**
 * VHR through the real engine (real ORT, in process) on tiny-llava with images, against the float64
 * reference (test/reference/vhr-reference.ts): prompt logprobs and a 30-token greedy decode within 1e-4
 * and the same selected heads, for several layer lists, alphas and options; layer-by-layer selection
 * (the second target layer sees the first one reinforced); the text-only pass (a plain prefill of the
 * cut prompt, once per request, before the main prefill); frozen heads; identity settings bit-identical
 * to the plain graph; mixed batches; and aborts during the prepass.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessEngine, maxAbsDiff, request, type RunResult } from '../helpers/engine-harness.js';
import {
  imageRequest, loadTinyLlava, tinyLlavaEngineModel, tinyLlavaImage, tinyLlavaPrompt, type TinyLlava,
} from '../helpers/tiny-llava.js';
import { vhr, defaultVhrLayers, inputNames, type VhrConfig, type VhrMemo } from '../../calibrators/vhr.js';
import { paint } from '../../calibrators/paint.js';
import type { AnyCalibrator, Taps } from '../../calibrators/calibrator.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import { withoutImages } from '../../models/compiler/step-geometry.js';
import type { RenderedPrompt } from '../../src/api/chat-prompt.js';
import type { ImageInput } from '../../src/engine/types.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { ReferenceDecoder } from '../reference/reference-forward.js';
import { reinforceHooks, textOnlyOutputs } from '../reference/vhr-reference.js';
import { vhrReferenceRun, type VhrReferenceRun } from '../helpers/vhr-tiny-llava.js';

const TOLERANCE = 1e-4;
const DECODE = 30;

type VhrReport = { active: true; alpha: number; layers: number[]; heads_selected: number; heads_selected_per_layer: Record<string, number>; heads: Record<string, number[]>; vhd: Record<string, number[]> };
const reportOf = (r: RunResult): VhrReport => r.finish!.calibration.vhr as VhrReport;

function worstLogitDiff(run: RunResult, prompt: RenderedPrompt, ref: VhrReferenceRun): number {
  let worst = 0;
  ref.promptLogits.forEach((logits, p) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(p)!, logits))));
  ref.stepLogits.slice(0, run.tokenIds.length - 1).forEach((logits, s) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(prompt.ids.length + s)!, logits))));
  return worst;
}

const keyed = (rec: Record<number, number[]>) => Object.fromEntries(Object.entries(rec).map(([k, v]) => [String(k), v]));

function bitIdentical(a: RunResult, b: RunResult, what: string): void {
  assert.deepEqual(a.tokenIds, b.tokenIds, what);
  assert.equal(a.logits.size, b.logits.size, what);
  for (const [pos, logits] of b.logits) {
    const other = a.logits.get(pos)!;
    assert.ok(logits.every((v, k) => Object.is(v, other[k])), `${what}: position ${pos}`);
  }
}

describe('VHR in the engine (tiny-llava)', () => {
  let m: TinyLlava;
  let model: EngineModel;
  let prompt: RenderedPrompt;
  const images = new Map<string, ImageInput>();
  const resolve = (v: Record<string, unknown> | true) => vhr.resolve(v, model.facts);
  before(async () => {
    m = await loadTinyLlava();
    model = await tinyLlavaEngineModel(m, { calibrators: [vhr as AnyCalibrator] });
    prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    for (const f of ['half_bright.png', 'checker.png', 'gray_noise.png', 'one_bright_patch.png', 'noise_two_bright.png']) images.set(f, await tinyLlavaImage(m, f));
  });
  const vhrRun = (engine: InProcessEngine, id: string, cfg: VhrConfig, image: string, p = prompt, extra: Parameters<typeof request>[2] = {}) =>
    engine.submit({ ...imageRequest(id, p, [images.get(image)!], { maxTokens: DECODE, ignoreEos: true, promptLogprobs: 0, ...extra }, { vhr: cfg }), calibrationDetail: 'full' });

  it('default layers: the profile\'s, else layer 1 and the last 14/32 of the stack (LLaVA-1.5-7B: {1, 18..31})', () => {
    assert.deepEqual(defaultVhrLayers(32), [1, ...Array.from({ length: 14 }, (_, i) => 18 + i)]);
    assert.deepEqual(defaultVhrLayers(5), [1, 2, 3, 4]);
    assert.deepEqual(defaultVhrLayers(8), [1, 4, 5, 6, 7]);
    assert.deepEqual(defaultVhrLayers(1), [0]);
    assert.deepEqual(resolve(true).layers, [1, 2, 3, 4]);
    assert.deepEqual(vhr.resolve({ layers: 'default' }, { ...model.facts, profile: { vhr: { layers: [0, 4] } } }).layers, [0, 4]);
    assert.deepEqual(resolve({ layers: [3, 1, 3] }).layers, [1, 3]);
  });

  const CASES: [string, Record<string, unknown>][] = [
    ['defaults', {}],
    ['guard off (the filter zeroes outliers)', { outlier_guard: false }],
    ['alpha 3 on every layer', { alpha: 3, layers: [0, 1, 2, 3, 4] }],
    ['alpha 0.5, plain L2, layers 0 and 3, guard off', { alpha: 0.5, distance: 'l2', outlier_guard: false, layers: [0, 3] }],
    ['filter off, layer 2 only', { outlier_filter: false, layers: [2], alpha: 2.5 }],
  ];
  for (const [what, settings] of CASES) {
    it(`matches the float64 reference within ${TOLERANCE}: ${what}`, async () => {
      const cfg = resolve(settings);
      let outliers = 0;
      for (const image of ['half_bright.png', 'checker.png', 'gray_noise.png']) {
        const engine = new InProcessEngine(model, {}, true);
        const run = vhrRun(engine, 'v', cfg, image);
        await engine.drain();
        assert.equal(run.error, null);
        assert.equal(run.tokenIds.length, DECODE);
        const ref = vhrReferenceRun(m, prompt, [images.get(image)!], cfg, run.tokenIds);
        const report = reportOf(run);
        const worst = worstLogitDiff(run, prompt, ref);
        assert.ok(worst < TOLERANCE, `${image}: worst logit difference ${worst}`);
        assert.deepEqual(report.heads, keyed(ref.selection.heads), `${image}: selected heads`);
        for (const l of cfg.layers) {
          assert.ok(maxAbsDiff(report.vhd[l]!, ref.selection.vhd[l]!) < 1e-5, `${image}: VHD of layer ${l}`);
          const sel = ref.selection.layers[l]!;
          outliers += sel.outliers.length;
          // ⌊H/2⌋ heads whenever the (filtered) VHDs have no ties.
          if (new Set(sel.filtered).size === sel.filtered.length) assert.equal(report.heads_selected_per_layer[l], 4, `${image}: layer ${l}`);
        }
        assert.equal(report.heads_selected, Object.values(ref.selection.heads).flat().length);
        assert.deepEqual(report.layers, cfg.layers);
      }
      if (!cfg.outlierGuard && cfg.outlierFilter) assert.ok(outliers > 0, 'the outlier filter zeroed some head');
    });
  }

  it('selects layer by layer: the second target layer\'s VHD sees the first layer already reinforced', async () => {
    const cfg = resolve({ layers: [1, 3], alpha: 3 });
    const engine = new InProcessEngine(model, {}, true);
    const run = vhrRun(engine, 'lbl', cfg, 'checker.png');
    await engine.drain();
    const ref = vhrReferenceRun(m, prompt, [images.get('checker.png')!], cfg, run.tokenIds);
    const report = reportOf(run);
    // Layer 1 is first: both references select it from the same (unreinforced) outputs.
    assert.deepEqual(ref.unreinforced.heads[1], ref.selection.heads[1]);
    // Layer 3: the engine's VHD is the one computed after layer 1's reinforcement, not before it.
    assert.ok(maxAbsDiff(report.vhd[3]!, ref.selection.vhd[3]!) < 1e-5);
    assert.ok(maxAbsDiff(ref.unreinforced.vhd[3]!, ref.selection.vhd[3]!) > 1e-2, 'layer 1\'s reinforcement moves layer 3\'s outputs');
    assert.deepEqual(report.heads, keyed(ref.selection.heads));
    assert.notDeepEqual(ref.unreinforced.heads[3], ref.selection.heads[3], 'the two-pass variant would select other heads here');
    assert.ok(worstLogitDiff(run, prompt, ref) < TOLERANCE);
  });

  it('the text-only pass is a plain prefill of the cut prompt, runs once per request, before the main prefill', async () => {
    const seen: { text: Float32Array; mainStepsBefore: number }[] = [];
    let mainSteps = 0;
    const states: Float32Array[] = [];
    const tapped: AnyCalibrator = {
      ...(vhr as AnyCalibrator),
      afterAuxiliary(c, memo, name, taps: Taps) {
        assert.equal(name, 'text');
        vhr.afterAuxiliary!(c as VhrConfig, memo as VhrMemo, name, taps);
        seen.push({ text: Float32Array.from((memo as VhrMemo).text!), mainStepsBefore: mainSteps });
      },
      afterStep(c, row, memo, taps) {
        vhr.afterStep!(c as VhrConfig, row, memo as VhrMemo, taps);
        mainSteps++;
        states.push(Float32Array.from(row.state(inputNames.headGain)));
      },
    };
    const engine = new InProcessEngine({ ...model, calibrators: new Map([['vhr', tapped]]) }, {}, true);
    const cfg = resolve({});
    const run = vhrRun(engine, 't', cfg, 'half_bright.png');
    await engine.drain();
    assert.equal(run.error, null);
    assert.equal(seen.length, 1, 'one text-only pass');
    assert.equal(seen[0]!.mainStepsBefore, 0, 'it ends before the main row runs');
    assert.equal((run.finish!.calibration.vhr as VhrReport).active, true);

    const cut = withoutImages(prompt.ids, prompt.images);
    assert.equal(cut.length, prompt.ids.length - 16);
    assert.ok(!cut.includes(m.prompt.spec.imageTokenId));
    const ref = textOnlyOutputs(m.weights, cut);
    const { nLayers: L, nHeads: H, headDim: hd } = m.weights.config;
    assert.equal(seen[0]!.text.length, L * H * hd);
    assert.ok(maxAbsDiff(seen[0]!.text, ref.flatMap((layer) => layer.flatMap((head) => Array.from(head)))) < 1e-5, 'O_T equals the float64 plain prefill of the cut prompt');

    // Frozen: the prefill writes the heads, every decode step reads them back unchanged.
    assert.equal(states.length, DECODE, 'one prefill step and 29 decode steps');
    for (const s of states.slice(1)) assert.deepEqual(s, states[0]);
    const report = reportOf(run);
    for (let l = 0; l < L; l++) {
      const gains = Array.from(states[0]!.subarray(l * H, (l + 1) * H));
      const expected = Array.from({ length: H }, (_, h) => (report.heads[l]?.includes(h) ? cfg.alpha : 1));
      assert.deepEqual(gains, expected, `layer ${l}: α on the selected heads of target layers, 1 elsewhere`);
    }
    assert.ok(run.finish!.timing.prepassMs > 0, 'the prepass time is recorded');
    assert.ok(run.finish!.timing.prepassMs <= run.finish!.timing.prefillMs);
  });

  it('alpha 1 and an empty layer list are bit-identical to the plain model, also through the calibrated graph', async () => {
    const image = images.get('one_bright_patch.png')!;
    const plain = await new InProcessEngine(await tinyLlavaEngineModel(m), {}, true).run(imageRequest('p', prompt, [image], { maxTokens: 20, promptLogprobs: 0 }));
    const forced = await tinyLlavaEngineModel(m, { calibrators: [vhr as AnyCalibrator], plainFastPath: false });
    assert.deepEqual((await forced.graphs.sessionFor([])).graph.owners, ['vhr'], 'rows without VHR run the calibrated graph too');
    for (const [what, settings] of [['alpha 1', { alpha: 1 }], ['no layers', { layers: [] }]] as const) {
      const cfg = resolve(settings);
      assert.equal(vhr.isActive(cfg), false, what);
      const r = await new InProcessEngine(forced, {}, true).run(imageRequest('c', prompt, [image], { maxTokens: 20, promptLogprobs: 0 }, { vhr: cfg }));
      bitIdentical(r, plain, what);
      assert.deepEqual(r.finish!.calibration.vhr, { active: false });
      assert.equal(r.finish!.timing.prepassMs, 0, `${what}: no prepass`);
    }
    // A text-only row in the calibrated graph (identity inputs, a prepass's own situation) is the plain model too.
    const textPrompt = tinyLlavaPrompt(m, 'Once upon a time', 0);
    bitIdentical(
      await new InProcessEngine(forced, {}, true).run(request('t', textPrompt.ids, { maxTokens: 20, promptLogprobs: 0 })),
      await new InProcessEngine(await tinyLlavaEngineModel(m), {}, true).run(request('t', textPrompt.ids, { maxTokens: 20, promptLogprobs: 0 })),
      'text-only row',
    );
  });

  it('a batch mixing VHR settings, plain image rows and text-only rows gives each row its solo result', async () => {
    const two = tinyLlavaPrompt(m, 'Which one is brighter?', 2);
    const text = tinyLlavaPrompt(m, 'Tell me a story.', 0);
    const rows: { p: RenderedPrompt; imgs: string[]; calibration: Record<string, unknown> }[] = [
      { p: prompt, imgs: ['half_bright.png'], calibration: { vhr: resolve({}) } },
      { p: prompt, imgs: ['half_bright.png'], calibration: {} },
      { p: text, imgs: [], calibration: {} },
      { p: two, imgs: ['checker.png', 'noise_two_bright.png'], calibration: { vhr: resolve({ alpha: 0.5, layers: [0, 2], distance: 'l2' }) } },
      { p: prompt, imgs: ['gray_noise.png'], calibration: { vhr: resolve({ alpha: 3, outlier_guard: false }) } },
      { p: two, imgs: ['one_bright_patch.png', 'checker.png'], calibration: {} },
    ];
    const req = (i: number, prefix: string) => {
      const r = rows[i]!;
      return imageRequest(`${prefix}${i}`, r.p, r.imgs.map((f) => images.get(f)!), { maxTokens: 16, ignoreEos: true, promptLogprobs: 0 }, r.calibration);
    };
    const solo: RunResult[] = [];
    for (let i = 0; i < rows.length; i++) solo.push(await new InProcessEngine(model, {}, true).run(req(i, 's')));
    const engine = new InProcessEngine(model, { maxBatch: 10 }, true);
    const together = rows.map((_, i) => engine.submit(req(i, 'b')));
    let peak = 0;
    await engine.drain(() => (peak = Math.max(peak, engine.core.stats.slotsInUse)));
    assert.ok(peak >= rows.length, 'the rows ran together');
    together.forEach((t, i) => {
      assert.equal(t.error, null);
      assert.deepEqual(t.tokenIds, solo[i]!.tokenIds, `row ${i}`);
      let worst = 0;
      for (const [pos, logits] of solo[i]!.logits) worst = Math.max(worst, maxAbsDiff(t.logits.get(pos)!, logits));
      assert.ok(worst < 1e-5, `row ${i}: worst ${worst}`);
      assert.deepEqual(t.finish!.calibration, solo[i]!.finish!.calibration, `row ${i}: report`);
    });
    assert.ok(maxAbsDiff(solo[0]!.logits.get(prompt.ids.length - 1)!, solo[1]!.logits.get(prompt.ids.length - 1)!) > 1e-3, 'VHR changes the logits');
    assert.equal(engine.core.stats.slotsInUse, 0);
  });

  it('a row\'s logits are bit-identical when the other rows of its batch change their VHR settings', async () => {
    const runBatch = async (settings: Record<string, unknown>[]) => {
      const engine = new InProcessEngine(model, { maxBatch: 6 }, true);
      const files = ['half_bright.png', 'checker.png', 'gray_noise.png'];
      const runs = settings.map((s, i) => vhrRun(engine, `x${i}`, resolve(s), files[i]!, prompt, { maxTokens: 12 }));
      await engine.drain();
      return runs;
    };
    const a = await runBatch([{}, { alpha: 3, layers: [0] }, { distance: 'l2', outlier_filter: false }]);
    const b = await runBatch([{}, { alpha: 0.25, layers: [2, 3, 4], outlier_guard: false }, { alpha: 1.5 }]);
    bitIdentical(a[0]!, b[0]!, 'row 0');
    assert.deepEqual(reportOf(a[0]!), reportOf(b[0]!));
  });

  it('scaling head outputs equals scaling the matching o_proj input columns (float64)', () => {
    const heads = { 1: [0, 5], 3: [2] };
    const alpha = 4; // a power of two, so the float32 weights scale exactly
    const { nHeads: H, headDim: hd, dim } = m.weights.config;
    const scaled: DecoderWeights = {
      ...m.weights,
      layers: m.weights.layers.map((layer, l) => {
        const hs = heads[l as keyof typeof heads] as number[] | undefined;
        if (!hs) return layer;
        const wo = Float32Array.from(layer.wo);
        for (let r = 0; r < dim; r++) for (const h of hs) for (let d = 0; d < hd; d++) wo[r * H * hd + h * hd + d]! *= alpha;
        return { ...layer, wo };
      }),
    };
    const ids = prompt.ids.filter((t) => t !== m.prompt.spec.imageTokenId);
    const viaHook = new ReferenceDecoder(m.weights);
    for (const [name, fn] of reinforceHooks(heads, alpha)) viaHook.addHook(name, fn);
    const a = viaHook.step({ tokens: ids });
    const b = new ReferenceDecoder(scaled).step({ tokens: ids });
    a.forEach((row, p) => assert.ok(maxAbsDiff(row, b[p]!) < 1e-9, `position ${p}`));
    assert.ok(maxAbsDiff(a.at(-1)!, new ReferenceDecoder(m.weights).step({ tokens: ids }).at(-1)!) > 1e-3);
  });

  it('an abort during the prepass frees every slot of the request, and the queue behind it moves on', async () => {
    const engine = new InProcessEngine(model, { maxBatch: 3 });
    const cfg = resolve({});
    const first = vhrRun(engine, 'a', cfg, 'checker.png');
    const second = vhrRun(engine, 'b', cfg, 'half_bright.png', prompt, { maxTokens: 4 });
    const stepping = engine.core.step(); // admits 'a' (main + prepass), then encodes and prefills it asynchronously
    assert.equal(engine.core.stats.slotsInUse, 2, 'the main row and its prepass hold a slot each');
    assert.equal(engine.core.stats.waiting, 1, '\'b\' needs two slots, one is free');
    engine.core.abort('a');
    await stepping;
    assert.equal(first.finish?.reason, 'abort');
    assert.equal(engine.core.stats.slotsInUse, 0, 'both of \'a\'s slots are free');
    await engine.drain();
    assert.equal(second.error, null);
    assert.equal(second.finish!.reason, 'length');
    assert.equal(engine.core.stats.slotsInUse, 0);
    // Between steps, with the main row blocked behind its prepass's result, an abort frees both at once.
    const third = vhrRun(engine, 'c', cfg, 'gray_noise.png');
    engine.core.abort('c');
    assert.equal(engine.core.stats.slotsInUse, 0);
    await engine.drain();
    assert.equal(third.finish!.reason, 'abort');
    assert.throws(() => new InProcessEngine(model, { maxBatch: 1 }).submit(imageRequest('d', prompt, [images.get('checker.png')!], {}, { vhr: cfg })), /needs 2 sequences/);
  });

  it('runs beside PAINT with guidance on the same request: a prepass and a companion, three slots, all freed', async () => {
    const both = await tinyLlavaEngineModel(m, { calibrators: [vhr as AnyCalibrator, paint as AnyCalibrator] });
    const calibration = { vhr: vhr.resolve({}, both.facts), paint: paint.resolve({ guidance: true }, both.facts) };
    const engine = new InProcessEngine(both, { maxBatch: 4 });
    const image = images.get('half_bright.png')!;
    const run = engine.submit(imageRequest('vp', prompt, [image], { maxTokens: 12, ignoreEos: true }, calibration));
    const first = engine.core.step(); // admits the request, then encodes and runs the prepass
    assert.equal(engine.core.stats.slotsInUse, 3, 'the main row, VHR\'s prepass and PAINT\'s companion');
    await first;
    assert.equal(engine.core.stats.slotsInUse, 2, 'the prepass gave its slot back at once');
    await engine.drain();
    assert.equal(run.error, null);
    assert.equal(run.tokenIds.length, 12);
    assert.equal(engine.core.stats.slotsInUse, 0);
    assert.equal((run.finish!.calibration.vhr as VhrReport).heads_selected_per_layer['1'], 4);
    assert.equal((run.finish!.calibration.paint as { active: boolean; guided_steps: number }).guided_steps, 12);
    const aborted = engine.submit(imageRequest('va', prompt, [image], { maxTokens: 12, ignoreEos: true }, calibration));
    await engine.core.step();
    engine.core.abort('va');
    await engine.drain();
    assert.equal(aborted.finish!.reason, 'abort');
    assert.equal(engine.core.stats.slotsInUse, 0);
  });

  it('refuses what it cannot do: no image, nothing but an image, no vision tower, bad layers', () => {
    const cfg = resolve({});
    assert.match(vhr.checkPrompt!(cfg, { promptIds: tinyLlavaPrompt(m, 'Hi', 0).ids, images: [] }, model.facts) ?? '', /no image/);
    assert.match(vhr.checkPrompt!(cfg, { promptIds: new Array(16).fill(0), images: [{ image: 0, start: 0, length: 16 }] }, model.facts) ?? '', /nothing but image tokens/);
    assert.equal(vhr.checkPrompt!(cfg, { promptIds: prompt.ids, images: prompt.images }, model.facts), null);
    assert.throws(() => vhr.resolve(true, { ...model.facts, vision: undefined }), /no vision tower/);
    assert.throws(() => resolve({ layers: [1, 5] }), (e: { path?: unknown[] }) => JSON.stringify(e.path) === '["layers",1]');
    assert.throws(() => resolve({ alpha: 0 }));
    assert.throws(() => resolve({ alpha: 1000 }));
    assert.throws(() => resolve({ distance: 'cosine' }));
    assert.throws(() => resolve({ option: 'B' }), /unrecognized/i);
    assert.deepEqual(vhr.fragments({ ...model.facts, vision: undefined }), [], 'a text-only model gets no VHR fragment');
    assert.throws(() => vhr.fragments({ ...model.facts, profile: { vhr: { layers: [1, 7] } } }), /names layer 7, but the model has 5 layers/);
  });
});
