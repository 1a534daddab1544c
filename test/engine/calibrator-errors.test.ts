/**
 * A calibrator that throws in one of its per-row hooks or its report (a bug in it) fails only the
 * request it belongs to: batch-mates in the same forward call, in the same graph or another, keep their solo
 * tokens and logits bit for bit, the failing request gets an error event naming the calibrator and
 * the hook, and every slot comes back.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { z } from 'zod';
import type { AnyCalibrator, Calibrator } from '../../calibrators/calibrator.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import { assertBitIdentical, InProcessEngine, request } from '../helpers/engine-harness.js';
import { fixtureEngineModel, loadLlama2cFixture, type FixtureModel } from '../helpers/load-fixture-model.js';
import { stories260K } from '../helpers/models-dir.js';

type Hook = 'none' | 'writeInputs' | 'afterStep' | 'report';
interface FaultyConfig {
  failIn: Hook;
  /** The forward call (counted per row, from 1) whose hook throws. */
  atCall: number;
}

/** Identity edits (hook_z times a per-row 1), and a throw in the configured hook at the configured call. */
const faulty: Calibrator<FaultyConfig, { calls: number }> = {
  id: 'faulty',
  summary: 'test calibrator: throws in a chosen hook at a chosen call',
  schema: z.object({ failIn: z.enum(['none', 'writeInputs', 'afterStep', 'report']), atCall: z.number().int() }).strict(),
  resolve: (v) => v as unknown as FaultyConfig,
  isActive: () => true,
  needsWholePrefill: () => false,
  fragments: () => [{ owner: 'faulty', hook: 'attn.hook_z', build: (x, ctx) => ctx.g.op('Mul', [x, ctx.rowInput('faulty.scale', 'float32', [1, 1, 1], 1)]) }],
  createMemo: () => ({ calls: 0 }),
  writeInputs: (cfg, _row, inputs, memo) => {
    memo.calls++;
    inputs.set('faulty.scale', 1);
    if (cfg.failIn === 'writeInputs' && memo.calls === cfg.atCall) throw new Error('a bug in writeInputs');
  },
  afterStep: (cfg, _row, memo) => {
    if (cfg.failIn === 'afterStep' && memo.calls === cfg.atCall) throw new Error('a bug in afterStep');
  },
  report: (cfg, memo) => {
    if (cfg.failIn === 'report') throw new Error('a bug in report');
    return { calls: memo.calls };
  },
};

const MAX_TOKENS = 12;

describe('a calibrator that throws fails only its own request', () => {
  let m: FixtureModel;
  let model: EngineModel;
  let prompt: number[];
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
    model = await fixtureEngineModel(m, { calibrators: [faulty as AnyCalibrator] });
    prompt = m.tokenizer.encode('Once upon a time', { addBos: true });
  });

  const sampling = { maxTokens: MAX_TOKENS, ignoreEos: true };
  const healthy = { faulty: { failIn: 'none', atCall: 0 } };

  it('in writeInputs or afterStep, at prefill or mid-decode, beside healthy rows of the same and another graph', async () => {
    const solo = new InProcessEngine(model, { maxBatch: 8 }, true);
    const soloPlain = await solo.run(request('plain', prompt, sampling));
    const soloCalibrated = await solo.run(request('calibrated', prompt, sampling, healthy));

    const engine = new InProcessEngine(model, { maxBatch: 8 }, true);
    const plain = engine.submit(request('plain', prompt, sampling));
    const calibrated = engine.submit(request('calibrated', prompt, sampling, healthy));
    const failing = (['writeInputs', 'afterStep'] as const).flatMap((hook) =>
      [1, 5].map((atCall) => ({ hook, atCall, run: engine.submit(request(`${hook}-${atCall}`, prompt, sampling, { faulty: { failIn: hook, atCall } })) })));
    await engine.drain();

    assertBitIdentical(soloPlain, plain);
    assertBitIdentical(soloCalibrated, calibrated);
    assert.equal(plain.error, null);
    assert.equal(calibrated.error, null);
    for (const { hook, atCall, run } of failing) {
      assert.equal(run.finish, null, `${hook} at call ${atCall} finished`);
      assert.ok(run.error, `${hook} at call ${atCall} has no error`);
      assert.equal(run.error.reason, 'internal');
      assert.match(run.error.message, new RegExp(`calibrator faulty failed in ${hook}: a bug in ${hook}`));
      // Nothing sampled from the step whose hook threw: tokens only from the calls before it.
      assert.equal(run.tokenIds.length, atCall - 1, `${hook} at call ${atCall}: ${run.tokenIds.length} tokens`);
    }
    assert.equal(engine.core.stats.slotsInUse, 0);
  });

  it('in report, when the request finishes: an error instead of the finish, and nothing else fails', async () => {
    const engine = new InProcessEngine(model, { maxBatch: 8 });
    const fine = engine.submit(request('fine', prompt, sampling, healthy));
    const broken = engine.submit(request('broken', prompt, sampling, { faulty: { failIn: 'report', atCall: 0 } }));
    await engine.drain();
    assert.equal(fine.error, null);
    assert.deepEqual(fine.finish?.calibration, { faulty: { active: true, calls: MAX_TOKENS } });
    assert.equal(broken.finish, null);
    assert.match(broken.error?.message ?? '', /calibrator faulty failed in report: a bug in report/);
    assert.equal(broken.tokenIds.length, MAX_TOKENS);
    assert.equal(engine.core.stats.slotsInUse, 0);
  });
});
