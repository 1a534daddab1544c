/**
 * Batched scoring through the engine worker equals a direct computation: float64 log-softmax of
 * the raw logits of a solo, in-process run of the same tokens, with and without ACT.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { act } from '../../calibrators/act.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { loadDataset, parseDataset } from '../../src/eval/dataset.js';
import { itemScores } from '../../src/eval/metrics.js';
import { continuationIds, prepareTask, taskSpans, type PreparedTask, type ScoredSpan } from '../../src/eval/prepare.js';
import { scoreSpans, type ResolvedCalibration } from '../../src/eval/scorer.js';
import { loadEvalModel, startEvalEngine, type EvalEngine } from '../../src/eval/session.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import { InProcessEngine, request } from '../helpers/engine-harness.js';
import { fixtureEngineModel, loadLlama2cFixture, type FixtureModel } from '../helpers/load-fixture-model.js';
import { modelsDir, stories260K } from '../helpers/models-dir.js';
import { CLOZE_DIR } from './cli-runner.js';

function logSoftmaxAt(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let z = 0;
  for (const v of logits) z += Math.exp(v - max);
  return logits[id]! - max - Math.log(z);
}

describe('scoring (stories260K)', () => {
  let fixture: FixtureModel;
  let inProcess: EngineModel;
  let engine: EvalEngine;
  let calibrations: ResolvedCalibration[];
  before(async () => {
    fixture = await loadLlama2cFixture(stories260K);
    inProcess = await fixtureEngineModel(fixture, { calibrators: [act as AnyCalibrator], name: 'stories260K' });
    const model = await loadEvalModel(join(modelsDir, 'stories260K'));
    engine = await startEvalEngine(model, {});
    calibrations = [{}, { act: act.resolve({ heads: { 2: [1, 3], 3: [6], 4: [0, 5] } }, engine.facts) }];
  });
  after(() => engine?.client.close());

  /** Σ log p(ids[t] | ids[<t]) for t ≥ start, from one solo in-process run. */
  async function direct(span: ScoredSpan, calibration: ResolvedCalibration): Promise<number> {
    const run = await new InProcessEngine(inProcess, {}, true).run(request('direct', span.ids, { maxTokens: 0, promptLogprobs: 0 }, calibration));
    assert.equal(run.error, null);
    let sum = 0;
    for (let t = span.start; t < span.ids.length; t++) sum += logSoftmaxAt(run.logits.get(t - 1)!, span.ids[t]!);
    return sum;
  }

  async function check(task: PreparedTask): Promise<Float64Array[]> {
    const spans = taskSpans(task);
    const batched = await scoreSpans(engine.client, spans, calibrations);
    for (const [c, calibration] of calibrations.entries()) {
      for (const [s, span] of spans.entries()) {
        const want = await direct(span, calibration);
        assert.ok(Math.abs(batched[c]![s]! - want) < 1e-4, `calibration ${c}, span ${s}: ${batched[c]![s]} vs ${want}`);
      }
    }
    assert.ok(batched[0]!.some((v, s) => Math.abs(v - batched[1]![s]!) > 1e-3), 'ACT changes some scores, so it was applied');
    return batched;
  }

  it('MC: choice scores are the summed continuation logprobs, and accuracy is their argmax', async () => {
    const data = await loadDataset(join(CLOZE_DIR, 'calibration.jsonl'));
    if (data.kind !== 'mc') return assert.fail('the calibration set is multiple choice');
    const subset = { kind: 'mc' as const, items: data.items.slice(0, 6) };
    const task = prepareTask(subset, fixture.tokenizer);
    if (task.kind !== 'mc') return assert.fail('an MC dataset prepares to an MC task');
    assert.equal(task.boundaryFallbacks, 0);
    for (const [i, item] of task.items.entries()) {
      const promptIds = fixture.tokenizer.encode(subset.items[i]!.prompt, { addBos: true });
      for (const choice of item.choices) {
        assert.deepEqual(choice.ids.slice(0, choice.start), promptIds, 'the prompt tokens are a prefix');
        assert.ok(choice.ids.length > choice.start);
      }
    }
    // The documented fallback (choice encoded alone, dummy prefix dropped) agrees with the joint
    // encoding wherever the latter is valid, so switching to it would not change a score.
    for (const [i, item] of task.items.entries()) {
      item.choices.forEach((choice, c) => assert.deepEqual(continuationIds(fixture.tokenizer, subset.items[i]!.choices[c]!), choice.ids.slice(choice.start)));
    }
    const sums = await check(task);
    for (const s of sums) {
      const scored = itemScores(task, s);
      let at = 0;
      task.items.forEach((item, i) => {
        const own = Array.from(s.subarray(at, at + item.choices.length));
        at += item.choices.length;
        assert.equal(scored.predictions![i], own.indexOf(Math.max(...own)));
        assert.equal(scored.values[i], scored.predictions![i] === item.answer ? 1 : 0);
      });
    }
  });

  it('NLL: an item is the mean negative logprob of its tokens after the first', async () => {
    const data = parseDataset(
      ['Once upon a time, there was a little girl named Lily.', 'The dog ran to the park and played with a big red ball.', 'Tom was sad.']
        .map((text) => JSON.stringify({ text }))
        .join('\n'),
      'inline',
    );
    const task = prepareTask(data, fixture.tokenizer);
    const sums = await check(task);
    const scored = itemScores(task, sums[0]!);
    taskSpans(task).forEach((span, i) => {
      assert.equal(span.start, 1);
      assert.ok(Math.abs(scored.values[i]! + sums[0]![i]! / (span.ids.length - 1)) < 1e-12);
      assert.ok(scored.values[i]! > 0);
    });
  });
});
