/**
 * ACT through the real engine on stories260K, against the float64 reference with the official
 * semantics: prefill parity and reported sink sets, decode running sums vs full recomputation,
 * mixed batches, and bit-identity for identity settings.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, fixtureEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request, maxAbsDiff, type RunResult } from '../helpers/engine-harness.js';
import { ReferenceDecoder } from '../reference/reference-forward.js';
import { ActReference, sinksFromScores } from '../reference/act-reference.js';
import { act, type ActConfig, type ActMemo } from '../../calibrators/act.js';
import { sinkSet } from '../../calibrators/act-sinks.js';
import type { AnyCalibrator, ModelFacts } from '../../calibrators/calibrator.js';
import type { EngineModel } from '../../src/engine/engine-core.js';

const HEADS = { 2: [0, 3, 5], 3: [1, 2, 7], 4: [0, 4, 6] };
const PROMPTS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree.',
  'Tom had a small dog. The dog liked to run and jump. One day the dog found a stick in the garden and brought it to Tom.',
];

describe('ACT in the engine (stories260K)', () => {
  let m: FixtureModel;
  let facts: ModelFacts;
  let model: EngineModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
    facts = { name: 'stories260K', config: m.weights.config, profile: {} };
    model = await fixtureEngineModel(m, { calibrators: [act as AnyCalibrator] });
  });
  const resolve = (v: Record<string, unknown>) => act.resolve(v, facts);

  it('prefill: logits match the float64 official semantics within 1e-4, and prefill_sinks equal the reference sets', async () => {
    for (const text of PROMPTS) {
      const prompt = m.tokenizer.encode(text, { addBos: true });
      const cfg = resolve({ heads: HEADS });
      const engine = new InProcessEngine(model, {}, true);
      const r = await engine.run({ ...request('act', prompt, { maxTokens: 1, promptLogprobs: 0 }, { act: cfg }), calibrationDetail: 'full' });
      assert.equal(r.error, null);

      const ref = new ReferenceDecoder(m.weights);
      const actRef = new ActReference(cfg, m.weights.config.maxSeqLen);
      ref.addHook('*', (rows, ctx) => (ctx.point === 'attn.hook_pattern' ? actRef.hook(rows, ctx) : undefined));
      const logits = ref.step({ tokens: prompt });
      let worst = 0;
      logits.forEach((row, pos) => (worst = Math.max(worst, maxAbsDiff(r.logits.get(pos)!, row))));
      assert.ok(worst < 1e-4, `max |ORT − float64| = ${worst}`);

      // No score sits within 1e-4 of τ, so float32 and float64 must agree on every sink set.
      for (const [key, rows] of actRef.originalRows) {
        const n = rows.length;
        for (let j = 0; j < n; j++) {
          const score = rows.reduce((s, row) => s + row[j]!, 0) / (n - j);
          assert.ok(Math.abs(score - cfg.threshold) > 1e-4, `${key} key ${j}: score ${score} is too close to τ for this check`);
        }
      }
      const reported = (r.finish!.calibration.act as { prefill_sinks: Record<string, Record<string, number[]>> }).prefill_sinks;
      let total = 0;
      for (const [layer, heads] of Object.entries(HEADS)) {
        for (const h of heads) {
          const expected = actRef.lastSinks.get(Number(layer))!.get(h)!;
          assert.deepEqual(reported[layer]![h], expected, `layer ${layer} head ${h}`);
          total += expected.length;
        }
      }
      assert.equal((r.finish!.calibration.act as { sinks_detected: number }).sinks_detected, total);
      assert.ok(total > 0, 'the prompt should have hidden sinks to calibrate');
      assert.equal((r.finish!.calibration.act as { heads_calibrated: number }).heads_calibrated, 9);
    }
  });

  it('decode: running-sum sink sets equal a full recomputation over all queries so far, at every one of 50 greedy steps', async () => {
    const prompt = m.tokenizer.encode(PROMPTS[1]!, { addBos: true });
    const cfg = resolve({ heads: HEADS });
    // Tap the engine's running sums after every step.
    const engineSinks: Map<string, number[]>[] = [];
    const tapped: AnyCalibrator = {
      ...(act as AnyCalibrator),
      afterStep(c, row, memo) {
        act.afterStep!(c as ActConfig, row, memo as ActMemo);
        const n = row.past + row.newTokens;
        const step = new Map<string, number[]>();
        for (const [layer, heads] of Object.entries(HEADS)) {
          const state = row.state(`act.colsum.${layer}`);
          for (const h of heads) step.set(`${layer}:${h}`, sinkSet(state.subarray(h * row.capacity, h * row.capacity + n), n, cfg.threshold));
        }
        engineSinks.push(step);
      },
    };
    const tappedModel: EngineModel = { ...model, calibrators: new Map([['act', tapped]]) };
    const engine = new InProcessEngine(tappedModel, {}, true);
    const r = await engine.run(request('dec', prompt, { maxTokens: 51, ignoreEos: true }, { act: cfg }));
    assert.equal(r.tokenIds.length, 51);
    assert.equal(engineSinks.length, 51, 'one prefill step and 50 decode steps');

    const ref = new ReferenceDecoder(m.weights);
    const actRef = new ActReference(cfg, m.weights.config.maxSeqLen);
    ref.addHook('*', (rows, ctx) => (ctx.point === 'attn.hook_pattern' ? actRef.hook(rows, ctx) : undefined));
    let worst = maxAbsDiff(r.logits.get(prompt.length - 1)!, ref.step({ tokens: prompt }).at(-1)!);
    for (let s = 0; s < 51; s++) {
      if (s > 0) worst = Math.max(worst, maxAbsDiff(r.logits.get(prompt.length + s - 1)!, ref.step({ tokens: [r.tokenIds[s - 1]!] })[0]!));
      for (const [key, engineSet] of engineSinks[s]!) {
        // Full recomputation: stack every original row so far and apply the prefill formula.
        const rows = actRef.originalRows.get(key)!;
        const n = rows.length;
        const score = Array.from({ length: n }, (_, j) => rows.reduce((acc, row) => acc + (row[j] ?? 0), 0) / (n - j));
        assert.deepEqual(engineSet, sinksFromScores(score, cfg.threshold), `step ${s}, head ${key}`);
      }
    }
    assert.ok(worst < 1e-4, `decode logits: max |ORT − float64| = ${worst}`);
  });

  it('a batch mixing ACT on, ACT off and different betas gives each row exactly its solo result', async () => {
    const prompt = (i: number) => m.tokenizer.encode(PROMPTS[i % 2]!, { addBos: true });
    const settings: Record<string, unknown>[] = [
      { act: resolve({ heads: HEADS }) },
      {},
      { act: resolve({ heads: HEADS, beta: 0.1 }) },
      { act: resolve({ heads: { 3: [0, 1, 2, 3, 4, 5, 6, 7] }, beta: 0.7 }) },
      {},
      { act: resolve({ heads: HEADS, beta: 0.25, threshold: 0.2 }) },
    ];
    const solo: RunResult[] = [];
    for (const [i, calibration] of settings.entries()) {
      solo.push(await new InProcessEngine(model, {}, true).run(request(`s${i}`, prompt(i), { maxTokens: 30, ignoreEos: true }, calibration)));
    }
    const engine = new InProcessEngine(model, { maxBatch: 8 }, true);
    const together = settings.map((calibration, i) => engine.submit(request(`b${i}`, prompt(i), { maxTokens: 30, ignoreEos: true }, calibration)));
    await engine.drain();
    together.forEach((t, i) => {
      assert.deepEqual(t.tokenIds, solo[i]!.tokenIds, `row ${i}`);
      for (const [pos, logits] of solo[i]!.logits) assert.ok(maxAbsDiff(t.logits.get(pos)!, logits) < 1e-5, `row ${i} position ${pos}`);
    });
    // The settings really differ: ACT changes the logits (rows 0 and 4 share a prompt; 0 has ACT on).
    const pos = [...solo[0]!.logits.keys()][0]!;
    assert.ok(maxAbsDiff(solo[0]!.logits.get(pos)!, solo[4]!.logits.get(pos)!) > 1e-3);
  });

  it("a row's logits are bit-identical when the other rows of its batch change their ACT settings", async () => {
    const prompt = (i: number) => m.tokenizer.encode(PROMPTS[i % 2]!, { addBos: true });
    const settingsA: Record<string, unknown>[] = [{ act: resolve({ heads: HEADS }) }, {}, { act: resolve({ heads: HEADS, beta: 0.1 }) }];
    const settingsB: Record<string, unknown>[] = [{ act: resolve({ heads: HEADS }) }, { act: resolve({ heads: { 4: [1, 2] }, beta: 0 }) }, {}];
    const runBatch = async (settings: Record<string, unknown>[]) => {
      const engine = new InProcessEngine(model, { maxBatch: 4 }, true);
      const runs = settings.map((c, i) => engine.submit(request(`x${i}`, prompt(i), { maxTokens: 12, ignoreEos: true, promptLogprobs: 0 }, c)));
      await engine.drain();
      return runs;
    };
    const [a, b] = [await runBatch(settingsA), await runBatch(settingsB)];
    assert.deepEqual(a[0]!.tokenIds, b[0]!.tokenIds);
    for (const [pos, logits] of a[0]!.logits) {
      const other = b[0]!.logits.get(pos)!;
      assert.ok(logits.every((v, i) => Object.is(v, other[i])), `row 0, position ${pos}`);
    }
  });

  for (const [what, value] of [['beta 1', { heads: HEADS, beta: 1 }], ['empty heads', { heads: {} }]] as const) {
    it(`identity: ${what} is bit-identical to the plain model, also through the calibrated graph`, async () => {
      const cfg = resolve(value);
      assert.equal(act.isActive(cfg), false);
      const prompt = m.tokenizer.encode(PROMPTS[0]!, { addBos: true });
      const plain = await new InProcessEngine(await fixtureEngineModel(m), {}, true).run(request('p', prompt, { maxTokens: 20, promptLogprobs: 0 }));
      const forced = await fixtureEngineModel(m, { calibrators: [act as AnyCalibrator], plainFastPath: false });
      // Every step runs the graph with ACT's fragments, even for rows with ACT off.
      assert.ok((await forced.graphs.sessionFor([])).graph.rowInputs.some((r) => r.owner === 'act'));
      const calibrated = await new InProcessEngine(forced, {}, true).run(request('c', prompt, { maxTokens: 20, promptLogprobs: 0 }, { act: cfg }));
      assert.deepEqual(calibrated.tokenIds, plain.tokenIds);
      for (const [pos, logits] of plain.logits) {
        const other = calibrated.logits.get(pos)!;
        assert.ok(logits.every((v, i) => Object.is(v, other[i])), `position ${pos} differs`);
      }
    });
  }

  it('validation: layer and head paths, and a model without a profile', () => {
    assert.throws(() => resolve({ heads: { 0: [1] } }), (e: { path?: unknown[] }) => JSON.stringify(e.path) === '["heads","0"]');
    assert.throws(() => resolve({ heads: { 2: [1, 8] } }), (e: { path?: unknown[] }) => JSON.stringify(e.path) === '["heads","2",1]');
    assert.throws(() => act.resolve(true, facts), /no ACT head profile.*attune profile act/);
    assert.throws(() => resolve({ beta: 2, heads: HEADS }));
    assert.throws(() => resolve({ heads: { '02': [1] } }), /leading zeros/);
  });

  it('a profile that does not fit the model stops the engine at load', () => {
    const withProfile = (act_: NonNullable<ModelFacts['profile']['act']>) => ({ ...facts, profile: { act: act_ } });
    assert.throws(() => act.fragments(withProfile({ heads: {}, layers: [2, 9] })), /names layer 9, but the model has 5 layers/);
    assert.throws(() => act.fragments(withProfile({ heads: { 1: [0] } })), /heads in layer 1, which is not among its ACT layers/);
    assert.throws(() => act.fragments(withProfile({ heads: { 3: [8] } })), /names head 8 in layer 3, but the model has 8 query heads/);
    assert.equal(act.fragments(withProfile({ heads: { 3: [7] } })).length, 1);
  });
});
