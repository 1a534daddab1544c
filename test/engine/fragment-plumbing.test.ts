/**
 * The parts of the fragment API that ACT does not use, through the real engine: step geometry
 * (`rows.seq_lens`, `rows.key_positions`, `rows.query_valid`) and an `overwrite` state carried
 * across steps, with padded batched prefill, chunked prefill and decode. A test calibrator records,
 * per step, [tokens in the sequence, the largest key position, real query rows seen so far].
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, fixtureEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, request } from '../helpers/engine-harness.js';
import { attr } from '../../models/onnx/graph-builder.js';
import type { Calibrator, AnyCalibrator } from '../../calibrators/calibrator.js';

type Memo = { steps: number[][] };

const STATE = 'probe.stats';
const probe: Calibrator<Record<string, never>, Memo> = {
  id: 'probe',
  summary: 'records step geometry',
  schema: z.object({}),
  resolve: () => ({}),
  isActive: () => true,
  needsWholePrefill: () => false,
  fragments: () => [
    {
      owner: 'probe',
      hook: 'hook_resid_pre',
      layers: (l) => l === 0,
      build(x, ctx) {
        const { g } = ctx;
        const i64 = (v: number[]) => g.constInt64(v);
        const state = ctx.rowState(STATE, [3], 'overwrite');
        const seq = g.op('Unsqueeze', [ctx.geometry('seqLens'), i64([1])]); // [B,1]
        const maxKey = g.op('ReduceMax', [ctx.geometry('keyPositions')], { axes: attr.ints([1]), keepdims: attr.int(1) });
        const queries = g.op('ReduceSum', [ctx.geometry('queryValid'), i64([1])], { keepdims: attr.int(1) });
        const seen = g.op('Add', [queries, g.op('Slice', [state.value, i64([2]), i64([3]), i64([1])])]);
        state.setNext(g.op('Concat', [seq, maxKey, seen], { axis: attr.int(1) }));
        return x;
      },
    },
  ],
  createMemo: () => ({ steps: [] }),
  writeInputs: () => undefined,
  afterStep(_cfg, row, memo) {
    memo.steps.push(Array.from(row.state(STATE)));
  },
  report: (_cfg, memo) => ({ steps: memo.steps }),
};

describe('fragment plumbing: geometry and overwrite states', () => {
  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  it('every row sees its own geometry across padded, chunked and decode steps', async () => {
    const model = await fixtureEngineModel(m, { calibrators: [probe as AnyCalibrator] });
    const engine = new InProcessEngine(model, { maxBatch: 4, prefillChunk: 6, maxPrefillTokensPerStep: 64 });
    const prompts = ['Once upon a time', 'The little dog ran to the park to play', 'Lily'].map((t) => m.tokenizer.encode(t, { addBos: true }));
    const runs = prompts.map((p, i) => engine.submit(request(`r${i}`, p, { maxTokens: 5, ignoreEos: true }, { probe: {} })));
    await engine.drain();
    runs.forEach((r, i) => {
      assert.equal(r.error, null);
      const steps = (r.finish!.calibration.probe as { steps: number[][] }).steps;
      const P = prompts[i]!.length;
      const chunks = Math.ceil(P / 6);
      assert.equal(steps.length, chunks + 4, `row ${i}: ${chunks} prefill chunk(s) and 4 decode steps`);
      steps.forEach(([seq, maxKey, seen], s) => {
        const n = s < chunks ? Math.min(P, (s + 1) * 6) : P + (s - chunks) + 1;
        assert.deepEqual([seq, maxKey, seen], [n, n - 1, n], `row ${i} step ${s}`);
      });
    });
  });
});

/**
 * Composition at one hook: fragments run in registry order whatever order the request lists the
 * calibrators in; a later fragment sees the earlier one's output as its input and the untouched
 * tensor as `ctx.original`; an owner's `ctx.local` carries a value from one hook of a layer to a
 * later hook of the same layer.
 */
describe('fragment composition: registry order, ctx.original, ctx.local', () => {
  let m: FixtureModel;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
  });

  const scale: Calibrator<{ by: number }, null> = {
    id: 'scale',
    summary: 'multiplies hook_resid_pre of layer 1 by a per-row factor',
    schema: z.object({ by: z.number() }),
    resolve: (v) => ({ by: (v as { by: number }).by }),
    isActive: () => true,
    needsWholePrefill: () => false,
    fragments: () => [{
      owner: 'scale', hook: 'hook_resid_pre', layers: (l) => l === 1,
      build: (x, ctx) => ctx.g.op('Mul', [x, ctx.rowInput('scale.by', 'float32', [1, 1], 1)]),
    }],
    createMemo: () => null,
    writeInputs: (cfg, _row, inputs) => inputs.set('scale.by', cfg.by),
    report: () => ({}),
  };
  type Seen = { seen: number[]; original: number[]; carried: number[] };
  const watch: Calibrator<Record<string, never>, Seen> = {
    id: 'watch',
    summary: 'taps what it sees at hook_resid_pre of layer 1, and carries it to hook_z',
    schema: z.object({}),
    resolve: () => ({}),
    isActive: () => true,
    needsWholePrefill: () => false,
    fragments: () => [
      {
        owner: 'watch', hook: 'hook_resid_pre', layers: (l) => l === 1,
        build(x, ctx) {
          const last = ctx.g.op('Unsqueeze', [ctx.g.op('Cast', [ctx.geometry('lastQuery')], { to: attr.int(1) }), ctx.g.constInt64([2])]); // [B,T,1]
          const atLast = (v: typeof x) => ctx.g.op('ReduceSum', [ctx.g.op('Mul', [v, last]), ctx.g.constInt64([1])], { keepdims: attr.int(0) });
          ctx.tap('seen', atLast(x), [ctx.config.dim]);
          ctx.tap('original', atLast(ctx.original), [ctx.config.dim]);
          ctx.local.set('resid_at_last', atLast(x));
          return x;
        },
      },
      {
        owner: 'watch', hook: 'attn.hook_z', layers: (l) => l === 1,
        build(z, ctx) {
          ctx.tap('carried', ctx.local.get('resid_at_last')!, [ctx.config.dim]);
          return z;
        },
      },
    ],
    createMemo: () => ({ seen: [], original: [], carried: [] }),
    writeInputs: () => undefined,
    afterStep(_cfg, row, memo, taps) {
      if (!row.isPrefill) return;
      memo.seen = Array.from(taps.get('seen')!.data);
      memo.original = Array.from(taps.get('original')!.data);
      memo.carried = Array.from(taps.get('carried')!.data);
    },
    report: (_cfg, memo) => ({ ...memo }),
  };

  it('runs in registry order, with the original tensor and a per-layer scratch', async () => {
    const model = await fixtureEngineModel(m, { calibrators: [scale as AnyCalibrator, watch as AnyCalibrator] });
    const engine = new InProcessEngine(model);
    const p = m.tokenizer.encode('Once upon a time', { addBos: true });
    for (const calibration of [{ watch: {}, scale: { by: 2 } }, { scale: { by: 2 }, watch: {} }]) {
      const r = await engine.run(request(`o${Object.keys(calibration)[0]}`, p, { maxTokens: 1 }, calibration));
      const seen = r.finish!.calibration.watch as Seen;
      assert.ok(seen.seen.length === m.weights.config.dim && seen.seen.some((v) => v !== 0));
      seen.seen.forEach((v, i) => assert.equal(v, 2 * seen.original[i]!, `dim ${i}: scale ran first, watch saw its output`));
      assert.deepEqual(seen.carried, seen.seen);
    }
  });
});
