/**
 * Every calibrator in one batch on tiny-llava: plain image and text rows beside ACT, VAR, VHR (with
 * its prepass), PAINT with and without guidance (with its companion), and the combinations that
 * compose (VAR + PAINT, VHR + guided PAINT). Each row must give its solo result: the same greedy
 * tokens and logits within float rounding (rows are grouped by graph and padded shapes change
 * rounding, so not bit for bit across groups), the same calibration report, and every slot back.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { CALIBRATORS, loadModelProfile } from '../../calibrators/index.js';
import type { ModelFacts } from '../../calibrators/calibrator.js';
import { InProcessEngine, maxAbsDiff, type RunResult } from '../helpers/engine-harness.js';
import { imageRequest, loadTinyLlava, tinyLlavaEngineModel, tinyLlavaImage, tinyLlavaPrompt, TINY_LLAVA_DIR, type TinyLlava } from '../helpers/tiny-llava.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import type { GenerationRequest } from '../../src/engine/types.js';

const TOLERANCE = 5e-5;

describe('all calibrators in one batch (tiny-llava)', () => {
  let m: TinyLlava;
  let model: EngineModel;
  let facts: ModelFacts;
  before(async () => {
    m = await loadTinyLlava();
    const profile = loadModelProfile('tiny-llava', TINY_LLAVA_DIR);
    model = await tinyLlavaEngineModel(m, { calibrators: CALIBRATORS, profile });
    facts = model.facts;
  });

  it('gives every row its solo result, and frees every slot', async () => {
    const resolve = (id: string, value: true | Record<string, unknown>) => CALIBRATORS.find((c) => c.id === id)!.resolve(value, facts);
    const image = await tinyLlavaImage(m, 'half_bright.png');
    const other = await tinyLlavaImage(m, 'noise_two_bright.png');
    const withImage = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const textOnly = tinyLlavaPrompt(m, 'Once upon a time there was a', 0);
    const sampling = { maxTokens: 8, ignoreEos: true, promptLogprobs: 0 };
    const rows: [string, () => GenerationRequest][] = [
      ['plain image', () => imageRequest('plain-image', withImage, [image], sampling)],
      ['plain text', () => imageRequest('plain-text', textOnly, [], sampling)],
      ['act', () => imageRequest('act', textOnly, [], sampling, { act: resolve('act', { heads: { 2: [0, 1], 3: [4] } }) })],
      ['var', () => imageRequest('var', withImage, [image], sampling, { var: resolve('var', true) })],
      ['vhr', () => imageRequest('vhr', withImage, [other], sampling, { vhr: resolve('vhr', true) })],
      ['paint', () => imageRequest('paint', withImage, [image], sampling, { paint: resolve('paint', true) })],
      ['paint guided', () => imageRequest('paint-g', withImage, [other], sampling, { paint: resolve('paint', { guidance: { gamma: 1.1 } }) })],
      ['var + paint', () => imageRequest('var-paint', withImage, [other], sampling, { var: resolve('var', true), paint: resolve('paint', true) })],
      ['vhr + guided paint', () => imageRequest('vhr-paint', withImage, [image], sampling, { vhr: resolve('vhr', true), paint: resolve('paint', { guidance: true }) })],
    ];
    const solo: RunResult[] = [];
    for (const [, make] of rows) solo.push(await new InProcessEngine(model, { maxBatch: 4 }, true).run(make()));
    const engine = new InProcessEngine(model, { maxBatch: 16 }, true);
    const runs = rows.map(([, make]) => engine.submit(make()));
    let peak = 0;
    await engine.drain(() => (peak = Math.max(peak, engine.core.stats.slotsInUse)));
    assert.ok(peak >= rows.length, `sequences ran together (peak ${peak} slots)`);
    assert.equal(engine.core.stats.slotsInUse, 0, 'every slot (prepasses and companions included) is back');
    runs.forEach((r, i) => {
      const [what] = rows[i]!;
      assert.equal(r.error, null, what);
      assert.deepEqual(r.tokenIds, solo[i]!.tokenIds, `${what}: tokens`);
      let worst = 0;
      for (const [pos, logits] of solo[i]!.logits) worst = Math.max(worst, maxAbsDiff(r.logits.get(pos)!, logits));
      assert.ok(worst < TOLERANCE, `${what}: worst logit difference ${worst}`);
      assert.deepEqual(r.finish!.calibration, solo[i]!.finish!.calibration, `${what}: report`);
    });
  });
});
