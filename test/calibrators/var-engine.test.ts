/**
 * VAR through the real engine (real ORT, in process) on tiny-llava with its fixture images, against
 * the float64 reference with the official semantics (test/reference/var-reference.ts): every prompt
 * position and a 30-token greedy decode within 1e-4, reported sink sets and edited-row counts equal
 * to the reference's; chunked prefill and two images; frozen sinks; the layer range; an image with
 * no visual sinks bit-identical to the plain model; mixed batches (VAR on, off, other knobs, ACT on
 * other rows) giving each row its solo result; ACT and VAR on one request refused.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessEngine, maxAbsDiff, type RunResult } from '../helpers/engine-harness.js';
import {
  imageRequest, loadTinyLlava, referenceRun, tinyLlavaEngineModel, tinyLlavaImage, tinyLlavaPrompt, TINY_LLAVA_IMAGES, type TinyLlava,
} from '../helpers/tiny-llava.js';
import { VarReference } from '../reference/var-reference.js';
import { varCalibrator, type VarConfig, type VarMemo } from '../../calibrators/var.js';
import { act } from '../../calibrators/act.js';
import { CALIBRATORS, loadModelProfile } from '../../calibrators/index.js';
import { paint } from '../../calibrators/paint.js';
import { paintHook, referenceSelection } from '../reference/paint-reference.js';
import { ReferenceVision } from '../reference/vision-reference.js';
import type { HookFn } from '../reference/reference-forward.js';
import type { AnyCalibrator, ModelFacts } from '../../calibrators/calibrator.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import type { RenderedPrompt } from '../../src/api/chat-prompt.js';
import type { ImageInput } from '../../src/engine/types.js';

const TOLERANCE = 1e-4;
const DECODE = 30;
/**
 * Batched rows against their solo runs: padded shapes change float rounding (observed up to 1.2e-5 on
 * these logits, for ACT rows as much as for VAR rows), so across graphs and shapes this is a tolerance.
 */
const SOLO_TOLERANCE = 5e-5;
/** Decisions this close to a threshold could go either way between float32 and float64. */
const MARGIN = 1e-4;

interface VarReport {
  active: boolean;
  sinks_found: number;
  visual_sinks: number;
  rows_edited: number;
  decode_rows_edited: number;
  calibrated_layers: number[];
  layers?: Record<string, { sinks: number[]; visual_sinks: number[]; edited_rows: number }>;
}

const report = (r: RunResult) => r.finish!.calibration.var as VarReport;

/** The run against the float64 reference with VAR hooks: logits, sink sets and edited rows. */
function checkAgainstReference(m: TinyLlava, run: RunResult, prompt: RenderedPrompt, images: readonly ImageInput[], cfg: VarConfig, what: string, before: HookFn[] = []): VarReference {
  assert.equal(run.error, null, what);
  const ref = new VarReference(
    { recycle: cfg.recycleFraction, minNonsinkRatio: cfg.minNonsinkRatio, minImageAttention: cfg.minImageAttention, tau: cfg.tau, sinkDims: cfg.sinkDims, layers: cfg.layers },
    prompt.images, prompt.ids.length);
  const out = referenceRun(m, prompt, images, run.tokenIds.slice(0, -1), [...before.map((h) => ['*', h] as ['*', HookFn]), ['*', ref.hook]]);
  for (const [layer, phis] of ref.phis) for (const [pos, v] of phis) assert.ok(Math.abs(v - cfg.tau) > MARGIN, `${what}: φ at layer ${layer} position ${pos} is ${v}, too close to τ`);
  for (const d of ref.decisions) {
    assert.ok(Math.abs(d.sinkRatio - (1 - cfg.minNonsinkRatio)) > MARGIN && Math.abs(d.imageMass - cfg.minImageAttention) > MARGIN, `${what}: a decision sits on a threshold`);
  }
  let worst = 0;
  out.promptLogits.forEach((logits, p) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(p)!, logits))));
  out.stepLogits.forEach((logits, s) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(prompt.ids.length + s)!, logits))));
  assert.ok(worst < TOLERANCE, `${what}: worst logit difference ${worst}`);

  const rep = report(run);
  assert.deepEqual(rep.calibrated_layers, cfg.layers);
  for (const l of cfg.layers) {
    assert.deepEqual(rep.layers![l]!.sinks, ref.sinks.get(l), `${what}: sinks of layer ${l}`);
    assert.deepEqual(rep.layers![l]!.visual_sinks, ref.visualSinks(l), `${what}: visual sinks of layer ${l}`);
    assert.equal(rep.layers![l]!.edited_rows, ref.editedPrefill.get(l), `${what}: edited rows of layer ${l}`);
  }
  assert.equal(rep.sinks_found, cfg.layers.reduce((a, l) => a + ref.sinks.get(l)!.length, 0));
  assert.equal(rep.visual_sinks, cfg.layers.reduce((a, l) => a + ref.visualSinks(l).length, 0));
  assert.equal(rep.rows_edited, cfg.layers.reduce((a, l) => a + ref.editedPrefill.get(l)!, 0));
  assert.equal(rep.decode_rows_edited, ref.editedDecode, `${what}: rows edited at decode`);
  return ref;
}

const bitIdentical = (a: RunResult, b: RunResult, what: string) => {
  assert.deepEqual(a.tokenIds, b.tokenIds, what);
  for (const [pos, logits] of b.logits) assert.ok(logits.every((v, k) => Object.is(v, a.logits.get(pos)![k])), `${what}: position ${pos}`);
};

describe('VAR in the engine (tiny-llava)', () => {
  let m: TinyLlava;
  let facts: ModelFacts;
  let model: EngineModel;
  let plain: EngineModel;
  before(async () => {
    m = await loadTinyLlava();
    const profile = loadModelProfile('tiny-llava', null);
    model = await tinyLlavaEngineModel(m, { calibrators: CALIBRATORS, profile });
    plain = await tinyLlavaEngineModel(m);
    facts = model.facts;
  });
  const resolve = (v: true | Record<string, unknown> = true) => varCalibrator.resolve(v, facts);
  const varRun = (engine: InProcessEngine, id: string, prompt: RenderedPrompt, images: ImageInput[], cfg: VarConfig, maxTokens = DECODE) =>
    engine.run({ ...imageRequest(id, prompt, images, { maxTokens, ignoreEos: true, promptLogprobs: 0 }, { var: cfg }), calibrationDetail: 'full' });

  it('the built-in profile: sink dim 40, τ 4; layers 2..L−2 by default', () => {
    assert.deepEqual(resolve(), {
      recycleFraction: 0.4, minNonsinkRatio: 0.5, minImageAttention: 0.2, tau: 4, sinkDims: [40], includeLastLayer: false, layers: [2, 3], nLayers: 5, dim: 64,
    });
  });

  for (const file of TINY_LLAVA_IMAGES) {
    it(`equals the float64 reference on ${file}: every prompt position, a ${DECODE}-token greedy decode, sinks and edited rows`, async () => {
      const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
      const image = await tinyLlavaImage(m, file);
      const cfg = resolve();
      const run = await varRun(new InProcessEngine(model, {}, true), 'v', prompt, [image], cfg);
      assert.equal(run.tokenIds.length, DECODE);
      const ref = checkAgainstReference(m, run, prompt, [image], cfg, file);
      if (file === 'gray_noise.png') assert.equal(report(run).visual_sinks, 0, 'the gray image has no visual sinks');
      else {
        assert.ok(report(run).rows_edited > 0, `${file}: VAR edits rows`);
        assert.ok(ref.editedDecode > 0, `${file}: VAR edits decode rows`);
      }
    });
  }

  it('gray_noise.png (no visual sinks) is bit-identical to the plain model', async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const image = await tinyLlavaImage(m, 'gray_noise.png');
    const withVar = await varRun(new InProcessEngine(model, {}, true), 'v', prompt, [image], resolve());
    assert.equal(report(withVar).visual_sinks, 0);
    const without = await new InProcessEngine(plain, {}, true).run(imageRequest('p', prompt, [image], { maxTokens: DECODE, ignoreEos: true, promptLogprobs: 0 }));
    bitIdentical(withVar, without, 'gray_noise');
  });

  for (const [what, value] of [['recycle_fraction 0', { recycle_fraction: 0 }], ['empty sink_dims', { sink_dims: [] }]] as const) {
    it(`identity: ${what} is bit-identical to the plain model, also through the calibrated graph`, async () => {
      const cfg = resolve(value as Record<string, unknown>);
      assert.equal(varCalibrator.isActive(cfg), false);
      const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
      const image = await tinyLlavaImage(m, 'half_bright.png');
      const forced = await tinyLlavaEngineModel(m, { calibrators: [varCalibrator as AnyCalibrator], profile: facts.profile, plainFastPath: false });
      assert.deepEqual((await forced.graphs.sessionFor([])).graph.owners, ['var'], 'rows without VAR run the calibrated graph too');
      const calibrated = await varRun(new InProcessEngine(forced, {}, true), 'c', prompt, [image], cfg);
      const without = await new InProcessEngine(plain, {}, true).run(imageRequest('p', prompt, [image], { maxTokens: DECODE, ignoreEos: true, promptLogprobs: 0 }));
      bitIdentical(calibrated, without, what);
    });
  }

  it('fragments sit in layers 2..L−1 only: layers 0 and 1 are never edited', async () => {
    const graph = (await model.graphs.sessionFor(['var'])).graph;
    assert.deepEqual(graph.states.filter((st) => st.owner === 'var').map((st) => st.name), ['var.sink.2', 'var.sink.3', 'var.sink.4']);
    assert.deepEqual(graph.taps.filter((t) => t.owner === 'var').map((t) => t.name), ['edited.2', 'edited.3', 'edited.4']);
  });

  it('VAR changes the output where there are visual sinks, and include_last_layer edits layer L−1 too', async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const image = await tinyLlavaImage(m, 'noise_two_bright.png');
    const without = await new InProcessEngine(plain, {}, true).run(imageRequest('p', prompt, [image], { maxTokens: DECODE, ignoreEos: true, promptLogprobs: 0 }));
    const paper = await varRun(new InProcessEngine(model, {}, true), 'a', prompt, [image], resolve());
    const cfg = resolve({ include_last_layer: true, recycle_fraction: 0.7, min_nonsink_ratio: 0.3 });
    const release = await varRun(new InProcessEngine(model, {}, true), 'b', prompt, [image], cfg);
    const last = prompt.ids.length - 1;
    assert.ok(maxAbsDiff(paper.logits.get(last)!, without.logits.get(last)!) > 1e-3, 'VAR changes the logits');
    assert.ok(maxAbsDiff(paper.logits.get(last)!, release.logits.get(last)!) > 1e-3, 'the last layer and the knobs change them again');
    assert.deepEqual(report(release).calibrated_layers, [2, 3, 4]);
    const ref = checkAgainstReference(m, release, prompt, [image], cfg, 'include_last_layer');
    assert.ok(ref.editedPrefill.get(4)! > 0, 'layer 4 is edited');
  });

  it('two images (visual keys = their union), prefilled in chunks that cut through an image span', async () => {
    const prompt = tinyLlavaPrompt(m, 'Which one is brighter?', 2);
    const images = [await tinyLlavaImage(m, 'one_bright_patch.png'), await tinyLlavaImage(m, 'half_bright.png')];
    const cfg = resolve();
    const run = await varRun(new InProcessEngine(model, { prefillChunk: 7 }, true), 'two', prompt, images, cfg, 12);
    const ref = checkAgainstReference(m, run, prompt, images, cfg, 'two images, chunked');
    assert.ok(ref.visualSinks(2).some((p) => p < prompt.images[1]!.start) && ref.visualSinks(2).some((p) => p >= prompt.images[1]!.start), 'sinks in both images');
    const whole = await varRun(new InProcessEngine(model, {}, true), 'whole', prompt, images, cfg, 12);
    assert.deepEqual(report(whole).layers, report(run).layers, 'chunked and whole prefill find the same sinks and edit the same rows');
  });

  it('per-layer sink sets with text sinks among them (dims [20, 40], τ 3.5): the budget comes from every sink, parity holds', async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const image = await tinyLlavaImage(m, 'half_bright.png');
    const cfg = resolve({ sink_dims: [20, 40], tau: 3.5, include_last_layer: true });
    const run = await varRun(new InProcessEngine(model, {}, true), 'mixed', prompt, [image], cfg);
    const ref = checkAgainstReference(m, run, prompt, [image], cfg, 'dims 20 and 40');
    const sets = cfg.layers.map((l) => JSON.stringify(ref.sinks.get(l)));
    assert.ok(new Set(sets).size > 1, `the layers find different sinks: ${sets.join(' ')}`);
    assert.ok(cfg.layers.some((l) => ref.sinks.get(l)!.length > ref.visualSinks(l).length), 'some sinks are text tokens');
    assert.ok(report(run).rows_edited > 0);
  });

  it('VAR with PAINT on one row composes in registry order: VAR selects on attention that includes PAINT\'s score edit', async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const image = await tinyLlavaImage(m, 'noise_two_bright.png');
    const cfg = resolve({ include_last_layer: true });
    const paintCfg = paint.resolve({ alpha: 0.7, beta: 0.4 }, facts);
    const run = await new InProcessEngine(model, {}, true).run({
      ...imageRequest('vp', prompt, [image], { maxTokens: DECODE, ignoreEos: true, promptLogprobs: 0 }, { var: cfg, paint: paintCfg }), calibrationDetail: 'full',
    });
    const selection = referenceSelection(new ReferenceVision(m.vision.weights).forward(image.pixels).attentions, facts.vision!.featureBlock, paintCfg.localRatio, paintCfg.spatialRatio);
    const ref = checkAgainstReference(m, run, prompt, [image], cfg, 'VAR with PAINT', [paintHook(paintCfg, prompt.images, [selection], prompt.ids.length)]);
    assert.ok(ref.editedDecode > 0);
    const varOnly = await varRun(new InProcessEngine(model, {}, true), 'v', prompt, [image], cfg);
    assert.ok(maxAbsDiff(varOnly.logits.get(prompt.ids.length)!, run.logits.get(prompt.ids.length)!) > 1e-4, 'PAINT changes the result');
  });

  it('sinks are frozen after prefill (decode adds none), and a second request in the same slot recomputes them', async () => {
    const states: { isPrefill: boolean; flags: Map<number, number[]>; used: number }[] = [];
    const tapped: AnyCalibrator = {
      ...(varCalibrator as AnyCalibrator),
      afterStep(c, row, memo, taps) {
        varCalibrator.afterStep!(c as VarConfig, row, memo as VarMemo, taps);
        const used = row.past + row.newTokens;
        states.push({ isPrefill: row.isPrefill, used, flags: new Map([2, 3].map((l) => [l, Array.from(row.state(`var.sink.${l}`).subarray(0, used))])) });
      },
    };
    const tappedModel: EngineModel = { ...model, calibrators: new Map([['var', tapped]]) };
    const engine = new InProcessEngine(tappedModel, {}, true);
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const cfg = resolve({ include_last_layer: true });
    const first = await varRun(engine, 'one', prompt, [await tinyLlavaImage(m, 'checker.png')], cfg, 10);
    const prefillFlags = states.find((s) => s.isPrefill)!.flags;
    for (const s of states.filter((x) => !x.isPrefill)) {
      for (const [l, flags] of s.flags) {
        assert.deepEqual(flags.slice(0, prompt.ids.length), prefillFlags.get(l), `layer ${l}: frozen`);
        assert.ok(flags.slice(prompt.ids.length).every((f) => f === 0), `layer ${l}: no generated token is a sink`);
      }
    }
    states.length = 0;
    // Pitfall 9: the official code reuses the first sample's sinks. Here the same slot gets new ones.
    const second = await varRun(engine, 'two', prompt, [await tinyLlavaImage(m, 'one_bright_patch.png')], cfg, 10);
    assert.notDeepEqual(report(second).layers![2]!.sinks, report(first).layers![2]!.sinks);
    checkAgainstReference(m, second, prompt, [await tinyLlavaImage(m, 'one_bright_patch.png')], cfg, 'second request');
  });

  it('a batch mixing VAR on, off, other knobs, text-only rows and ACT rows gives each row its solo result', async () => {
    const bright = await tinyLlavaImage(m, 'half_bright.png');
    const two = await tinyLlavaImage(m, 'noise_two_bright.png');
    const actCfg = act.resolve({ heads: { 2: [0, 1, 5], 4: [3] } }, facts);
    const rows: { prompt: RenderedPrompt; images: ImageInput[]; calibration: Record<string, unknown> }[] = [
      { prompt: tinyLlavaPrompt(m, 'What is in the picture?', 1), images: [bright], calibration: { var: resolve() } },
      { prompt: tinyLlavaPrompt(m, 'What is in the picture?', 1), images: [bright], calibration: {} },
      { prompt: tinyLlavaPrompt(m, 'Describe the image.', 1), images: [two], calibration: { var: resolve({ recycle_fraction: 0.8, min_nonsink_ratio: 0.2, include_last_layer: true }) } },
      { prompt: tinyLlavaPrompt(m, 'Tell me a story.', 0), images: [], calibration: { act: actCfg } },
      { prompt: tinyLlavaPrompt(m, 'What color is it?', 1), images: [two], calibration: { act: actCfg } },
      { prompt: tinyLlavaPrompt(m, 'Compare them.', 2), images: [two, bright], calibration: { var: resolve({ min_image_attention: 0.1 }) } },
      { prompt: tinyLlavaPrompt(m, 'What color is it?', 1), images: [two], calibration: { var: resolve({ recycle_fraction: 0 }) } },
    ];
    const sampling = { maxTokens: 12, ignoreEos: true, promptLogprobs: 0 };
    const solo: RunResult[] = [];
    for (const [i, r] of rows.entries()) solo.push(await new InProcessEngine(model, {}, true).run(imageRequest(`s${i}`, r.prompt, r.images, sampling, r.calibration)));
    const engine = new InProcessEngine(model, { maxBatch: 8 }, true);
    const together = rows.map((r, i) => engine.submit(imageRequest(`b${i}`, r.prompt, r.images, sampling, r.calibration)));
    await engine.drain();
    together.forEach((t, i) => {
      assert.equal(t.error, null);
      assert.deepEqual(t.tokenIds, solo[i]!.tokenIds, `row ${i}`);
      let worst = 0;
      for (const [pos, logits] of solo[i]!.logits) worst = Math.max(worst, maxAbsDiff(t.logits.get(pos)!, logits));
      assert.ok(worst < SOLO_TOLERANCE, `row ${i}: worst ${worst}`);
      if ('var' in rows[i]!.calibration) assert.deepEqual(t.finish!.calibration.var, solo[i]!.finish!.calibration.var, `row ${i}: the same report`);
    });
    const last = rows[0]!.prompt.ids.length - 1;
    assert.ok(maxAbsDiff(solo[0]!.logits.get(last)!, solo[1]!.logits.get(last)!) > 1e-3, 'rows 0 and 1 differ only by VAR, and VAR changes them');
    assert.deepEqual(solo[6]!.finish!.calibration.var, { active: false }, 'recycle_fraction 0 is inactive');
  });

  it("a row's logits are bit-identical when its neighbours (same graph, same shapes) change their VAR settings", async () => {
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const images = [await tinyLlavaImage(m, 'checker.png'), await tinyLlavaImage(m, 'one_bright_patch.png'), await tinyLlavaImage(m, 'half_bright.png')];
    const runBatch = async (settings: Record<string, unknown>[]) => {
      const engine = new InProcessEngine(model, { maxBatch: 4 }, true);
      const runs = settings.map((c, i) => engine.submit(imageRequest(`x${i}`, prompt, [images[i]!], { maxTokens: 12, ignoreEos: true, promptLogprobs: 0 }, c)));
      await engine.drain();
      return runs;
    };
    const a = await runBatch([{ var: resolve() }, { var: resolve() }, { var: resolve({ recycle_fraction: 0.1 }) }]);
    const b = await runBatch([{ var: resolve() }, { var: resolve({ include_last_layer: true, min_nonsink_ratio: 0.9 }) }, { var: resolve({ recycle_fraction: 1, min_image_attention: 0 }) }]);
    bitIdentical(a[0]!, b[0]!, 'row 0');
    assert.notDeepEqual(a[1]!.logits.get(prompt.ids.length - 1), b[1]!.logits.get(prompt.ids.length - 1), 'the neighbours did change');
  });

  it('refusals: ACT with VAR on one request, VAR without the profile or on a text-only prompt', async () => {
    const prompt = tinyLlavaPrompt(m, 'Hi', 1);
    const engine = new InProcessEngine(model);
    const both = { act: act.resolve({ heads: { 2: [0] } }, facts), var: resolve() };
    const image = await tinyLlavaImage(m, 'checker.png');
    assert.throws(() => engine.submit(imageRequest('both', prompt, [image], {}, both)), /calibrators var and act cannot run on the same request/);
    assert.deepEqual(varCalibrator.conflicts, ['act']);
    assert.throws(() => varCalibrator.resolve(true, { ...facts, profile: {} }), /no VAR profile .*attune profile var --model tiny-llava/);
    assert.equal(varCalibrator.resolve({ sink_dims: [40], tau: 4 }, { ...facts, profile: {} }).tau, 4);
    assert.throws(() => resolve({ sink_dims: [40, 64] }), (e: { path?: unknown[] }) => JSON.stringify(e.path) === '["sink_dims",1]');
    assert.throws(() => varCalibrator.resolve(true, { ...facts, vision: undefined }), /no vision tower/);
    assert.match(varCalibrator.checkPrompt!(resolve(), { promptIds: [1, 2], images: [] }, facts)!, /needs an image/);
    assert.equal(varCalibrator.checkPrompt!(resolve(), { promptIds: prompt.ids, images: prompt.images }, facts), null);
  });

  it('a profile naming a dim the model does not have stops the engine at load; a text-only model gets no VAR fragments', () => {
    assert.throws(() => varCalibrator.fragments({ ...facts, profile: { var: { sink_dims: [64], tau: 4 } } }), /sink dim 64, but the model's hidden size is 64/);
    assert.deepEqual(varCalibrator.fragments({ ...facts, vision: undefined }), []);
  });
});
