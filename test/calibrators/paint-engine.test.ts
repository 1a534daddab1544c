/**
 * PAINT through the real engine (real ORT, in process) on tiny-llava, against the float64 reference
 * (vision tower → selection → decoder with the score edit as a hook; guidance from a second,
 * image-free reference decoder): token sets, prompt logits and greedy decodes within 1e-4 with and
 * without edit_prefill, guided greedy choices at every step, identity settings bit-identical to
 * plain, mixed batches, batch independence, and the companion's slots.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessEngine, maxAbsDiff, request, type RunResult } from '../helpers/engine-harness.js';
import {
  imageRequest, loadTinyLlava, referenceRun, tinyLlavaEngineModel, tinyLlavaImage, tinyLlavaPrompt, TINY_LLAVA_IMAGES, type TinyLlava,
} from '../helpers/tiny-llava.js';
import { act } from '../../calibrators/act.js';
import { paint, UNCOND, type PaintConfig, type PaintMemo } from '../../calibrators/paint.js';
import { CalibrationConfigError, type AnyCalibrator, type ModelFacts } from '../../calibrators/calibrator.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import type { RenderedPrompt } from '../../src/api/chat-prompt.js';
import type { ImageInput } from '../../src/engine/types.js';
import { withoutImages } from '../../models/compiler/step-geometry.js';
import { computeTokenLogprobs } from '../../src/engine/sampling/logprobs.js';
import { ReferenceVision } from '../reference/vision-reference.js';
import { ReferenceDecoder, argmax } from '../reference/reference-forward.js';
import { guidedScores, paintHook, referenceSelection, selectionMargin, type RefSelection } from '../reference/paint-reference.js';

const TOLERANCE = 1e-4;
const DECODE = 30;
const CALIBRATORS = [act as AnyCalibrator, paint as AnyCalibrator];

type Report = { local_tokens: number; summary_tokens: number; spatial_tokens?: number; guided_steps?: number; images?: RefSelection[] };
const reportOf = (r: RunResult) => r.finish!.calibration.paint as Report & { active: boolean };

describe('PAINT in the engine (tiny-llava)', () => {
  let m: TinyLlava;
  let model: EngineModel;
  let facts: ModelFacts;
  let vision: ReferenceVision;
  const images = new Map<string, ImageInput>();
  before(async () => {
    m = await loadTinyLlava();
    model = await tinyLlavaEngineModel(m, { calibrators: CALIBRATORS });
    facts = model.facts;
    vision = new ReferenceVision(m.vision.weights);
    for (const f of TINY_LLAVA_IMAGES) images.set(f, await tinyLlavaImage(m, f));
  });
  const resolve = (v: true | Record<string, unknown>) => paint.resolve(v, facts);
  const img = (f: string) => images.get(f)!;
  const selections = (cfg: PaintConfig, imgs: readonly ImageInput[]) =>
    imgs.map((i) => referenceSelection(vision.forward(i.pixels).attentions, facts.vision!.featureBlock, cfg.localRatio, cfg.spatialRatio));

  /** The float64 run of a prompt with PAINT's edit, fed the engine's tokens. */
  function paintReference(prompt: RenderedPrompt, imgs: readonly ImageInput[], cfg: PaintConfig, continuation: readonly number[]) {
    const hook = paintHook(cfg, prompt.images, selections(cfg, imgs), prompt.ids.length);
    return referenceRun(m, prompt, imgs, continuation, [['*', hook]]);
  }

  /** Every prompt position and every decode step of a PAINT run against the reference. */
  function checkParity(run: RunResult, prompt: RenderedPrompt, imgs: readonly ImageInput[], cfg: PaintConfig, what: string): void {
    assert.equal(run.error, null, what);
    const ref = paintReference(prompt, imgs, cfg, run.tokenIds);
    let worst = 0;
    ref.promptLogits.forEach((logits, p) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(p)!, logits))));
    ref.stepLogits.slice(0, run.tokenIds.length - 1).forEach((logits, s) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(prompt.ids.length + s)!, logits))));
    assert.ok(worst < TOLERANCE, `${what}: worst logit difference ${worst}`);
  }

  it('selects the same local, summary and spatial patches as the float64 reference on every fixture image', async () => {
    const prompt = tinyLlavaPrompt(m, 'Describe the picture.', 1);
    for (const settings of [{}, { local_ratio: 0.5, spatial_ratio: 0.25 }]) {
      const cfg = resolve(settings);
      for (const f of TINY_LLAVA_IMAGES) {
        const engine = new InProcessEngine(model);
        const r = await engine.run({ ...imageRequest('sel', prompt, [img(f)], { maxTokens: 1 }, { paint: cfg }), calibrationDetail: 'full' });
        const [expected] = selections(cfg, [img(f)]);
        const margin = selectionMargin(vision.forward(img(f).pixels).attentions, facts.vision!.featureBlock, cfg.localRatio, cfg.spatialRatio);
        assert.ok(margin > 1e-6, `${f}: a score within ${margin} of a selection boundary makes this check depend on rounding`);
        const report = reportOf(r);
        assert.deepEqual(report.images, [expected], `${f} ${JSON.stringify(settings)}`);
        assert.equal(report.local_tokens, expected!.local.length);
        assert.equal(report.summary_tokens, expected!.summary.length);
        if (cfg.spatialRatio > 0) assert.equal(report.spatial_tokens, expected!.spatial.length);
      }
    }
    // The planted CLS structure: head 0 attends to bright patches, so one_bright_patch.png's bright patch 6 is picked.
    const [one] = selections(resolve({}), [img('one_bright_patch.png')]);
    assert.ok([...one!.local, ...one!.summary].includes(6), JSON.stringify(one));
  });

  for (const editPrefill of [true, false]) {
    it(`prompt logits and a ${DECODE}-token greedy decode equal the reference within 1e-4 on every fixture image (edit_prefill ${editPrefill})`, async () => {
      const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
      const cfg = resolve({ edit_prefill: editPrefill });
      for (const f of TINY_LLAVA_IMAGES) {
        const run = await new InProcessEngine(model, {}, true).run(imageRequest('p', prompt, [img(f)], { maxTokens: DECODE, ignoreEos: true, promptLogprobs: 0 }, { paint: cfg }));
        assert.equal(run.tokenIds.length, DECODE);
        checkParity(run, prompt, [img(f)], cfg, `${f}, edit_prefill ${editPrefill}`);
      }
    });
  }

  it('the edit is real: it moves the last prompt row only with edit_prefill, and every decode step', async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const sampling = { maxTokens: 8, ignoreEos: true, promptLogprobs: 0 };
    const plain = await new InProcessEngine(model, {}, true).run(imageRequest('plain', prompt, [img('checker.png')], sampling));
    const on = await new InProcessEngine(model, {}, true).run(imageRequest('on', prompt, [img('checker.png')], sampling, { paint: resolve({}) }));
    const off = await new InProcessEngine(model, {}, true).run(imageRequest('off', prompt, [img('checker.png')], sampling, { paint: resolve({ edit_prefill: false }) }));
    const last = prompt.ids.length - 1;
    for (let p = 0; p < last; p++) {
      assert.ok(on.logits.get(p)!.every((v, i) => Object.is(v, plain.logits.get(p)![i])), `earlier prompt rows are never edited (position ${p})`);
    }
    assert.ok(maxAbsDiff(on.logits.get(last)!, plain.logits.get(last)!) > 1e-3, 'edit_prefill edits the last prompt row');
    assert.ok(off.logits.get(last)!.every((v, i) => Object.is(v, plain.logits.get(last)![i])), 'without edit_prefill the prefill is bit-identical to plain');
    assert.deepEqual(off.tokenIds[0], plain.tokenIds[0]);
    assert.ok(maxAbsDiff(off.logits.get(last + 1)!, plain.logits.get(last + 1)!) > 1e-3, 'decode steps are edited');
  });

  it('two images and a chunked prefill that cuts through them: parity within 1e-4, selections per image', async () => {
    const prompt = tinyLlavaPrompt(m, 'Which one is brighter?', 2);
    const imgs = [img('half_bright.png'), img('noise_two_bright.png')];
    const cfg = resolve({ spatial_ratio: 0.125, alpha: 0.5, beta: 0.6 });
    const run = await new InProcessEngine(model, { prefillChunk: 7 }, true).run({
      ...imageRequest('two', prompt, imgs, { maxTokens: 16, ignoreEos: true, promptLogprobs: 0 }, { paint: cfg }), calibrationDetail: 'full',
    });
    checkParity(run, prompt, imgs, cfg, 'two images, chunked');
    assert.deepEqual(reportOf(run).images, selections(cfg, imgs));
  });

  for (const [what, settings] of [
    ['defaults (γ 1.1, cutoff 0.1), edit_prefill', {}],
    ['γ 3, cutoff 0.05, no edit at prefill (the released CFG runs)', { edit_prefill: false, guidance: { gamma: 3, cutoff: 0.05 } }],
  ] as const) {
    it(`guidance, ${what}: every greedy token is the reference's guided choice; the companion computes the plain image-free prompt`, async () => {
      const cfg = resolve({ guidance: true, ...settings });
      const { gamma, cutoff } = cfg.guidance!;
      const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
      // Keep a copy of what the companion handed to mixLogits at each step.
      const companionLogits: Float32Array[] = [];
      const spy: AnyCalibrator = {
        ...(paint as AnyCalibrator),
        mixLogits(c, memo, own, companions) {
          companionLogits.push(Float32Array.from(companions.get(UNCOND)!));
          paint.mixLogits!(c as PaintConfig, memo as PaintMemo, own, companions);
        },
      };
      const spied: EngineModel = { ...model, calibrators: new Map([['act', act as AnyCalibrator], ['paint', spy]]) };
      const run = await new InProcessEngine(spied, {}, true).run(imageRequest('g', prompt, [img('half_bright.png')], { maxTokens: DECODE, ignoreEos: true, logprobs: 1, promptLogprobs: 0 }, { paint: cfg }));
      assert.equal(run.tokenIds.length, DECODE);
      assert.equal(reportOf(run).guided_steps, DECODE);
      checkParity(run, prompt, [img('half_bright.png')], cfg, 'the conditional stream');

      const cond = paintReference(prompt, [img('half_bright.png')], cfg, run.tokenIds);
      const uncond = new ReferenceDecoder(m.weights);
      const uncondPrompt = withoutImages(prompt.ids, prompt.images);
      assert.equal(uncondPrompt.length, prompt.ids.length - 16);
      let u = uncond.step({ tokens: uncondPrompt }).at(-1)!;
      let worstCompanion = 0;
      let differsFromCond = 0;
      for (let s = 0; s < DECODE; s++) {
        const c = s === 0 ? cond.promptLogits.at(-1)! : cond.stepLogits[s - 1]!;
        if (s > 0) u = uncond.step({ tokens: [run.tokenIds[s - 1]!] })[0]!;
        worstCompanion = Math.max(worstCompanion, maxAbsDiff(companionLogits[s]!, u));
        const expected = argmax(guidedScores(c, u, gamma, cutoff));
        assert.equal(run.tokenIds[s], expected, `step ${s}`);
        if (expected !== argmax(c)) differsFromCond++;
      }
      assert.ok(worstCompanion < TOLERANCE, `the companion is the plain model on the image-free prompt: ${worstCompanion}`);
      if (gamma >= 3) assert.ok(differsFromCond > 0, 'guidance changes some choice');
      // Logprobs stay the conditional stream's raw ones.
      const logprobs = run.events.flatMap((e) => (e.type === 'tokens' && e.logprobs ? e.logprobs : []));
      run.tokenIds.forEach((t, s) => {
        assert.equal(logprobs[s]!.logprob, computeTokenLogprobs(run.logits.get(prompt.ids.length - 1 + s)!, t, 1).logprob, `logprob at step ${s}`);
      });
    });
  }

  it('identity: alpha 0 and beta 0 (and an empty layer set) are bit-identical to plain, also through the calibrated graph', async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const sampling = { maxTokens: 20, ignoreEos: true, promptLogprobs: 0 };
    const plain = await new InProcessEngine(await tinyLlavaEngineModel(m), {}, true).run(imageRequest('p', prompt, [img('checker.png')], sampling));
    const forced = await tinyLlavaEngineModel(m, { calibrators: CALIBRATORS, plainFastPath: false });
    assert.deepEqual((await forced.graphs.sessionFor([])).graph.owners, ['act', 'paint'], 'rows without PAINT run the calibrated graph too');
    for (const settings of [{ alpha: 0, beta: 0 }, { layers: [] }]) {
      const cfg = resolve(settings);
      assert.equal(paint.isActive(cfg), false);
      for (const engineModel of [model, forced]) {
        const r = await new InProcessEngine(engineModel, {}, true).run(imageRequest('z', prompt, [img('checker.png')], sampling, { paint: cfg }));
        assert.deepEqual(r.tokenIds, plain.tokenIds);
        assert.deepEqual(r.finish!.calibration.paint, { active: false });
        for (const [pos, logits] of plain.logits) assert.ok(logits.every((v, i) => Object.is(v, r.logits.get(pos)![i])), `${JSON.stringify(settings)} position ${pos}`);
      }
    }
  });

  it('a batch mixing PAINT with and without guidance, plain image and text rows, ACT, and ACT with PAINT gives each row its solo result', async () => {
    const heads = { 2: [0, 1], 4: [3] };
    const rows: [RenderedPrompt, ImageInput[], Record<string, unknown>][] = [
      [tinyLlavaPrompt(m, 'Describe it.', 1), [img('one_bright_patch.png')], { paint: resolve({}) }],
      [tinyLlavaPrompt(m, 'What do you see?', 1), [img('checker.png')], { paint: resolve({ guidance: true }) }],
      [tinyLlavaPrompt(m, 'Describe it.', 1), [img('half_bright.png')], {}],
      [tinyLlavaPrompt(m, 'Tell me a story.', 0), [], {}],
      [tinyLlavaPrompt(m, 'Once upon a time', 0), [], { act: act.resolve({ heads }, facts) }],
      [tinyLlavaPrompt(m, 'Compare them.', 2), [img('noise_two_bright.png'), img('gray_noise.png')], { paint: resolve({ alpha: 0.3, beta: 0.9, edit_prefill: false, guidance: { gamma: 2 } }) }],
      [tinyLlavaPrompt(m, 'Describe it.', 1), [img('gray_noise.png')], { paint: resolve({ spatial_ratio: 0.25 }), act: act.resolve({ heads }, facts) }],
    ];
    const sampling = { maxTokens: 12, ignoreEos: true, promptLogprobs: 0 };
    const solo: RunResult[] = [];
    for (const [i, [p, imgs, calibration]] of rows.entries()) solo.push(await new InProcessEngine(model, {}, true).run(imageRequest(`s${i}`, p, imgs, sampling, calibration)));
    const engine = new InProcessEngine(model, { maxBatch: 9 }, true);
    const together = rows.map(([p, imgs, calibration], i) => engine.submit(imageRequest(`b${i}`, p, imgs, sampling, calibration)));
    let peak = 0;
    await engine.drain(() => (peak = Math.max(peak, engine.core.stats.slotsInUse)));
    assert.ok(peak >= 8, `the batch ran together (peak ${peak} slots)`);
    assert.equal(engine.core.stats.slotsInUse, 0);
    together.forEach((t, i) => {
      assert.equal(t.error, null);
      assert.deepEqual(t.tokenIds, solo[i]!.tokenIds, `row ${i}`);
      let worst = 0;
      for (const [pos, logits] of solo[i]!.logits) worst = Math.max(worst, maxAbsDiff(t.logits.get(pos)!, logits));
      // Rows with ACT move by up to ~1e-5 here: its column sums reduce over the batch's padded query
      // rows, whose shape changes the summation order. The other rows come out bit-identical.
      const tolerance = 'act' in rows[i]![2] ? 5e-5 : 1e-5;
      assert.ok(worst < tolerance, `row ${i}: worst ${worst}`);
    });
  });

  it("a row's logits are bit-identical when the other PAINT rows of its batch change their settings", async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const imgs = [img('checker.png'), img('half_bright.png'), img('noise_two_bright.png')];
    const runBatch = async (settings: Record<string, unknown>[]) => {
      const engine = new InProcessEngine(model, { maxBatch: 4 }, true);
      const runs = settings.map((s, i) => engine.submit(imageRequest(`x${i}`, prompt, [imgs[i]!], { maxTokens: 12, ignoreEos: true, promptLogprobs: 0 }, { paint: resolve(s) })));
      await engine.drain();
      return runs;
    };
    const a = await runBatch([{}, { alpha: 0.1, beta: 0.9 }, { layers: [3], local_ratio: 0.5 }]);
    const b = await runBatch([{}, { edit_prefill: false, spatial_ratio: 0.5 }, { alpha: 2, beta: 0 }]);
    assert.deepEqual(a[0]!.tokenIds, b[0]!.tokenIds);
    for (const [pos, logits] of a[0]!.logits) assert.ok(logits.every((v, i) => Object.is(v, b[0]!.logits.get(pos)![i])), `row 0, position ${pos}`);
  });

  it('a guided request holds two slots from admission on, and an abort frees both, between steps or mid-decode', async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const guided = (id: string) => imageRequest(id, prompt, [img('checker.png')], { maxTokens: 40, ignoreEos: true }, { paint: resolve({ guidance: true }) });
    const engine = new InProcessEngine(model, { maxBatch: 3 });
    const a = engine.submit(guided('a'));
    const b = engine.submit(guided('b'));
    await engine.core.step();
    assert.equal(engine.core.stats.slotsInUse, 2, 'the second guided request waits: it needs two slots and one is free');
    assert.equal(engine.core.stats.waiting, 1);
    engine.core.abort('a');
    assert.equal(engine.core.stats.slotsInUse, 0, 'an abort between steps frees both slots at once');
    for (let i = 0; i < 4; i++) await engine.core.step();
    assert.equal(engine.core.stats.slotsInUse, 2);
    assert.ok(b.tokenIds.length > 0, 'b is decoding');
    const stepping = engine.core.step();
    engine.core.abort('b'); // during a step: freed when it ends
    await stepping;
    assert.equal(engine.core.stats.slotsInUse, 0);
    assert.equal(a.finish!.reason, 'abort');
    assert.equal(b.finish!.reason, 'abort');
    assert.equal(reportOf(b).guided_steps, b.tokenIds.length);
    assert.throws(() => new InProcessEngine(model, { maxBatch: 1 }).submit(guided('c')), /needs 2 sequences/);
  });

  it('validation: models it cannot serve, prompts without an image, layer paths, head modulation without a table, bad values', async () => {
    const code = (fn: () => unknown, path: (string | number)[], message: RegExp) =>
      assert.throws(fn, (e: unknown) => e instanceof CalibrationConfigError && JSON.stringify(e.path) === JSON.stringify(path) && message.test(e.message));
    const textOnly: ModelFacts = { name: 'stories260K', config: facts.config, profile: {} };
    code(() => paint.resolve(true, textOnly), [], /has no vision tower/);
    code(() => paint.resolve(true, { ...facts, vision: { ...facts.vision!, hasCls: false } }), [], /no CLS token/);
    code(() => paint.resolve(true, { ...facts, vision: { ...facts.vision!, tokensArePatches: false } }), [], /not the tower's patches/);
    assert.deepEqual(paint.fragments(textOnly), [], 'no fragment is compiled into a text-only model');
    assert.deepEqual(paint.visionTaps!({ ...facts, vision: { ...facts.vision!, hasCls: false } }), []);
    code(() => resolve({ layers: [2, 1] }), ['layers', 1], /layer 1 has no PAINT fragment in this model; PAINT layers are 2, 3, 4/);
    code(() => resolve({ head_modulation: true }), ['head_modulation'], /no head table/);
    assert.deepEqual(resolve({ layers: [4, 2, 4] }).layers, [2, 4]);
    for (const bad of [{ alpha: -1 }, { local_ratio: 0 }, { spatial_ratio: 1 }, { guidance: { cutoff: 0 } }, { guidance: { gamma: 1, extra: 1 } }, { layers: 'all' }, { nope: 1 }]) {
      assert.throws(() => resolve(bad), Error, JSON.stringify(bad));
    }
    const d = resolve(true);
    assert.deepEqual({ ...d, headWeights: null }, {
      alpha: 0.7, beta: 0.4, localRatio: 0.25, spatialRatio: 0, layers: [2, 3, 4], editPrefill: true, guidance: null, headModulation: false,
      nLayers: 5, nHeads: 8, featureBlock: 1, headWeights: null,
    });
    const prompt = tinyLlavaPrompt(m, 'Hi', 1);
    assert.match(paint.checkPrompt!(d, { promptIds: tinyLlavaPrompt(m, 'Hi', 0).ids, images: [] }, facts)!, /needs an image/);
    assert.equal(paint.checkPrompt!(d, { promptIds: prompt.ids, images: prompt.images }, facts), null);
    const onlyImage = Array.from({ length: 16 }, () => 0);
    assert.match(paint.checkPrompt!(resolve({ guidance: true }), { promptIds: onlyImage, images: [{ image: 0, start: 0, length: 16 }] }, facts)!, /without its images is empty/);
  });

  it('a profile that does not fit the model stops the engine at load', () => {
    const withProfile = (p: Record<string, unknown>) => ({ ...facts, profile: { paint: p } });
    assert.throws(() => paint.fragments(withProfile({ layers: [2, 9] })), /names layer 9, but the model has 5 layers/);
    assert.throws(() => paint.fragments(withProfile({ head_weights: { 1: new Array(8).fill(1) } })), /head weights for layer 1, which is not among its PAINT layers/);
    assert.throws(() => paint.fragments(withProfile({ head_weights: { 3: [1, 1] } })), /2 head weights for layer 3, but the model has 8 query heads/);
    assert.equal(paint.fragments(withProfile({ layers: [0, 1], head_weights: { 1: new Array(8).fill(0.5) } })).length, 1);
    assert.deepEqual(paint.resolve({ head_modulation: true }, withProfile({ layers: [1], head_weights: { 1: [0, 1, 2, 3, 4, 5, 6, 7] } })).headWeights!.slice(0, 10), [1, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
  });

  it('head modulation (extension) through the engine: the reference with the same per-head weights, within 1e-4', async () => {
    const weights = { 2: [0, 0.5, 1, 1.5, 2, 0, 1, 1], 4: [1, 1, 1, 1, 0, 0, 0, 0] };
    const profile = { paint: { head_weights: weights, source: 'test' } };
    const modulated = await tinyLlavaEngineModel(m, { calibrators: CALIBRATORS, profile });
    const cfg = paint.resolve({ head_modulation: true }, modulated.facts);
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const run = await new InProcessEngine(modulated, {}, true).run(imageRequest('h', prompt, [img('half_bright.png')], { maxTokens: 12, ignoreEos: true, promptLogprobs: 0 }, { paint: cfg }));
    assert.equal(run.error, null);
    const w = (l: number, h: number) => (weights as Record<number, number[]>)[l]?.[h] ?? 1;
    const hook = paintHook({ ...cfg, headWeight: w }, prompt.images, selections(cfg, [img('half_bright.png')]), prompt.ids.length);
    const ref = referenceRun(m, prompt, [img('half_bright.png')], run.tokenIds, [['*', hook]]);
    let worst = maxAbsDiff(run.logits.get(prompt.ids.length - 1)!, ref.promptLogits.at(-1)!);
    ref.stepLogits.slice(0, run.tokenIds.length - 1).forEach((l, s) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(prompt.ids.length + s)!, l))));
    assert.ok(worst < TOLERANCE, `worst ${worst}`);
    // Off by default on the same model: the plain PAINT edit.
    const plainPaint = await new InProcessEngine(modulated, {}, true).run(imageRequest('n', prompt, [img('half_bright.png')], { maxTokens: 4, ignoreEos: true, promptLogprobs: 0 }, { paint: paint.resolve({}, modulated.facts) }));
    checkParity(plainPaint, prompt, [img('half_bright.png')], paint.resolve({}, modulated.facts), 'head modulation off');
  });

  it('a text-only request beside PAINT rows, and PAINT requests without an image at the engine level, run without error', async () => {
    const engine = new InProcessEngine(model, { maxBatch: 4 }, true);
    const text = tinyLlavaPrompt(m, 'Tell me a story.', 0);
    const t = engine.submit(request('t', text.ids, { maxTokens: 5 }));
    // checkPrompt refuses these over HTTP; the engine itself simply has no image token to boost.
    const p = engine.submit(request('p', text.ids, { maxTokens: 5 }, { paint: resolve({ guidance: true }) }));
    await engine.drain();
    assert.equal(t.error, null);
    assert.equal(p.error, null);
    assert.deepEqual(p.tokenIds, t.tokenIds, 'with no image the companion sees the same prompt: lp_c = lp_u, so guidance keeps the conditional choice');
  });
});
