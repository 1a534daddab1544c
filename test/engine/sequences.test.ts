/**
 * Request-owned sequences through the real engine (real ORT), with two test calibrators:
 * - `prepass`: asks for a text-only prepass over part of the prompt and taps the head outputs at its
 *   last row (hook_z of layer 1); the tap must equal a plain prefill of that prompt (float64 reference),
 *   arrive once, before the main row's prefill, and its slot must be freed at once.
 * - `follow`: asks for a companion over another prompt and mixes by replacing the main row's logits
 *   with the companion's; greedy decoding then follows the companion prompt's own greedy continuation
 *   (the companion is fed the main row's tokens), while returned logprobs stay the main row's raw ones.
 * Both count every slot at admission, and an abort frees every slot of the request.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, fixtureEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, maxAbsDiff, request } from '../helpers/engine-harness.js';
import { attr } from '../../models/onnx/graph-builder.js';
import type { AnyCalibrator, Calibrator } from '../../calibrators/calibrator.js';
import { ReferenceDecoder, hookName } from '../reference/reference-forward.js';
import { computeTokenLogprobs } from '../../src/engine/sampling/logprobs.js';

type PrepassMemo = { taps: Float32Array[]; mainStepsBeforeTap: number; steps: number };

/** Half of the prompt (at least one token) is the prepass. */
const prepassPrompt = (ids: readonly number[]) => ids.slice(0, Math.max(1, Math.floor(ids.length / 2)));

const prepassProbe: Calibrator<Record<string, never>, PrepassMemo> = {
  id: 'prepass',
  summary: 'taps head outputs at the last row of a prepass',
  schema: z.object({}),
  resolve: () => ({}),
  isActive: () => true,
  needsWholePrefill: () => false,
  fragments: () => [
    {
      owner: 'prepass',
      hook: 'attn.hook_z',
      layers: (l) => l === 1,
      build(z, ctx) {
        const { g } = ctx;
        const last = g.op('Unsqueeze', [g.op('Cast', [ctx.geometry('lastQuery')], { to: attr.int(1) }), g.constInt64([1, 3])]); // [B,1,T,1]
        ctx.tap('z_last', g.op('ReduceSum', [g.op('Mul', [z, last]), g.constInt64([2])], { keepdims: attr.int(0) }), [ctx.config.nHeads, ctx.config.headDim]);
        return z;
      },
    },
  ],
  createMemo: () => ({ taps: [], mainStepsBeforeTap: -1, steps: 0 }),
  auxiliary: (_cfg, prompt) => [{ name: 'text', role: 'prepass', promptIds: prepassPrompt(prompt.promptIds) }],
  afterAuxiliary(_cfg, memo, name, taps) {
    assert.equal(name, 'text');
    memo.taps.push(Float32Array.from(taps.get('z_last')!.data));
    memo.mainStepsBeforeTap = memo.steps;
  },
  writeInputs: () => undefined,
  afterStep(_cfg, _row, memo) {
    memo.steps++;
  },
  report: (_cfg, memo) => ({ taps: memo.taps.map((t) => Array.from(t)), mainStepsBeforeTap: memo.mainStepsBeforeTap }),
};

const follow: Calibrator<{ prompt: number[] }, { mixed: number }> = {
  id: 'follow',
  summary: 'decodes the companion prompt through the main row',
  schema: z.object({ prompt: z.array(z.number()) }),
  resolve: (v) => ({ prompt: (v as { prompt: number[] }).prompt }),
  isActive: () => true,
  needsWholePrefill: () => false,
  fragments: () => [{ owner: 'follow', hook: 'hook_resid_pre', layers: (l) => l === 0, build: (x) => x }],
  createMemo: () => ({ mixed: 0 }),
  auxiliary: (cfg) => [{ name: 'other', role: 'companion', promptIds: cfg.prompt }],
  writeInputs: () => undefined,
  mixLogits(_cfg, memo, own, companions) {
    own.set(companions.get('other')!);
    memo.mixed++;
  },
  report: (_cfg, memo) => ({ mixed: memo.mixed }),
};

describe('request-owned sequences', () => {
  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  it('a prepass runs once, before the main prefill, and hands over the taps of a plain prefill of its prompt', async () => {
    const model = await fixtureEngineModel(m, { calibrators: [prepassProbe as AnyCalibrator] });
    const engine = new InProcessEngine(model, { maxBatch: 4 }, true);
    const plainEngine = new InProcessEngine(await fixtureEngineModel(m), { maxBatch: 4 }, true);
    const prompts = ['Once upon a time, there was a little girl named Lily.', 'The dog ran to the park'].map((t) => m.tokenizer.encode(t, { addBos: true }));
    const runs = prompts.map((p, i) => engine.submit(request(`p${i}`, p, { maxTokens: 6, promptLogprobs: 0 }, { prepass: {} })));
    const plains = prompts.map((p, i) => plainEngine.submit(request(`q${i}`, p, { maxTokens: 6, promptLogprobs: 0 })));
    let peak = 0;
    await engine.drain(() => (peak = Math.max(peak, engine.core.stats.slotsInUse)));
    await plainEngine.drain();
    assert.ok(peak <= 4);
    assert.equal(engine.core.stats.slotsInUse, 0);

    const { nHeads, headDim } = m.weights.config;
    runs.forEach((r, i) => {
      assert.equal(r.error, null);
      const report = r.finish!.calibration.prepass as { taps: number[][]; mainStepsBeforeTap: number };
      assert.equal(report.taps.length, 1, 'the prepass runs once');
      assert.equal(report.mainStepsBeforeTap, 0, 'the taps arrive before the main row runs');
      // The prepass computes the plain model: its tap equals the reference's hook_z at its last row.
      const ref = new ReferenceDecoder(m.weights);
      const z: number[][] = Array.from({ length: nHeads }, () => []);
      ref.addHook(hookName(1, 'attn.hook_z'), (rows, ctx) => void (z[ctx.head!] = Array.from(rows.at(-1)!)));
      ref.step({ tokens: prepassPrompt(prompts[i]!) });
      assert.ok(maxAbsDiff(report.taps[0]!, z.flat()) < 1e-4, 'tap equals the float64 reference');
      assert.equal(report.taps[0]!.length, nHeads * headDim);
      // Identity inputs and a tap never change the main row: bit-identical to the plain engine.
      assert.deepEqual(r.tokenIds, plains[i]!.tokenIds);
      for (const [pos, logits] of plains[i]!.logits) assert.ok(logits.every((v, k) => Object.is(v, r.logits.get(pos)![k])), `position ${pos}`);
    });
  });

  it('a companion decodes in lockstep, is fed the main row\'s tokens, and its logits mix in before sampling', async () => {
    const model = await fixtureEngineModel(m, { calibrators: [follow as AnyCalibrator] });
    const engine = new InProcessEngine(model, { maxBatch: 4 }, true);
    const main = m.tokenizer.encode('The sky was dark and', { addBos: true });
    const other = m.tokenizer.encode('Once upon a time', { addBos: true });
    const run = engine.submit(request('f', main, { maxTokens: 12, ignoreEos: true, logprobs: 2 }, { follow: { prompt: other } }));
    let peak = 0;
    await engine.drain(() => (peak = Math.max(peak, engine.core.stats.slotsInUse)));
    assert.equal(run.error, null);
    assert.equal(peak, 2, 'the request holds two slots');
    assert.equal(engine.core.stats.slotsInUse, 0, 'both are freed with the request');
    assert.deepEqual(run.finish!.calibration.follow, { active: true, mixed: 12 });

    // Greedy on the companion's logits, with the companion fed those very tokens: the companion
    // prompt's own greedy continuation.
    const plain = await new InProcessEngine(await fixtureEngineModel(m), {}, true).run(request('o', other, { maxTokens: 12, ignoreEos: true }));
    assert.deepEqual(run.tokenIds, plain.tokenIds);
    // Logprobs are the main row's raw ones (its own context), not the mixed distribution.
    const logprobs = run.events.flatMap((e) => (e.type === 'tokens' && e.logprobs ? e.logprobs : []));
    run.tokenIds.forEach((t, s) => {
      assert.equal(logprobs[s]!.logprob, computeTokenLogprobs(run.logits.get(main.length - 1 + s)!, t, 0).logprob, `step ${s}`);
    });
  });

  it('counts every slot a request needs at admission, and an abort frees them all', async () => {
    const model = await fixtureEngineModel(m, { calibrators: [follow as AnyCalibrator, prepassProbe as AnyCalibrator] });
    const engine = new InProcessEngine(model, { maxBatch: 3 });
    const p = m.tokenizer.encode('Lily wanted to play', { addBos: true });
    const first = engine.submit(request('a', p, { maxTokens: 30, ignoreEos: true }, { follow: { prompt: p } }));
    const second = engine.submit(request('b', p, { maxTokens: 30, ignoreEos: true }, { follow: { prompt: p } }));
    await engine.core.step();
    assert.equal(engine.core.stats.slotsInUse, 2, 'the second request waits: it needs two slots and one is free');
    assert.equal(engine.core.stats.waiting, 1);
    engine.core.abort('a');
    assert.equal(engine.core.stats.slotsInUse, 0, 'an abort between steps frees both slots at once');
    const third = engine.submit(request('c', p, { maxTokens: 4 }, { prepass: {} }));
    await engine.core.step();
    engine.core.abort('c'); // during or right after its prepass
    engine.core.abort('b');
    await engine.drain();
    assert.equal(engine.core.stats.slotsInUse, 0);
    assert.equal(first.finish!.reason, 'abort');
    assert.equal(second.finish!.reason, 'abort');
    assert.equal(third.finish!.reason, 'abort');
    assert.throws(() => new InProcessEngine(model, { maxBatch: 1 }).submit(request('d', p, {}, { follow: { prompt: p } })), /needs 2 sequences/);
  });

  it('refuses calibrators that declare a conflict, whatever order the request lists them in', async () => {
    const a = { ...(follow as AnyCalibrator), id: 'a', conflicts: ['b'] };
    const b = { ...(prepassProbe as AnyCalibrator), id: 'b' };
    const model = await fixtureEngineModel(m, { calibrators: [a, b] });
    const engine = new InProcessEngine(model);
    const p = m.tokenizer.encode('Hi', { addBos: true });
    for (const calibration of [{ a: { prompt: p }, b: {} }, { b: {}, a: { prompt: p } }]) {
      assert.throws(() => engine.submit(request(`x${Object.keys(calibration)[0]}`, p, {}, calibration)), /a and b cannot run on the same request/);
    }
  });
});
