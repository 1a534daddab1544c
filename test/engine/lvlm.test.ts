/**
 * The LVLM path through the real engine (real ORT, in process) on tiny-llava: image features are
 * encoded in the worker, spliced at the image-token positions inside the decoder graph, and the
 * result equals the float64 reference (vision tower → projector → splice → decoder) for every fixture
 * image, for two images in one prompt, through chunked prefill, and in batches that mix text-only
 * and image rows. A text-only request runs exactly the language model (stories260K's logits).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessEngine, maxAbsDiff, request } from '../helpers/engine-harness.js';
import { fixtureEngineModel, loadLlama2cFixture } from '../helpers/load-fixture-model.js';
import { stories260K } from '../helpers/models-dir.js';
import {
  imageRequest, loadTinyLlava, referenceRun, tinyLlavaEngineModel, tinyLlavaImage, tinyLlavaPrompt, TINY_LLAVA_IMAGES, type TinyLlava,
} from '../helpers/tiny-llava.js';
import type { EngineModel } from '../../src/engine/engine-core.js';
import type { RunResult } from '../helpers/engine-harness.js';
import type { RenderedPrompt } from '../../src/api/chat-prompt.js';
import type { ImageInput } from '../../src/engine/types.js';

const TOLERANCE = 1e-4;
const DECODE = 30;

/** Every prompt position and every decode step of an engine run against the float64 reference. */
function checkAgainstReference(m: TinyLlava, run: RunResult, prompt: RenderedPrompt, images: readonly ImageInput[], what: string): void {
  assert.equal(run.error, null, what);
  const ref = referenceRun(m, prompt, images, run.tokenIds);
  let worst = 0;
  ref.promptLogits.forEach((logits, p) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(p)!, logits))));
  ref.stepLogits.slice(0, run.tokenIds.length - 1).forEach((logits, s) => (worst = Math.max(worst, maxAbsDiff(run.logits.get(prompt.ids.length + s)!, logits))));
  assert.ok(worst < TOLERANCE, `${what}: worst logit difference ${worst}`);
}

describe('LVLM: tiny-llava through the engine', () => {
  let m: TinyLlava;
  let model: EngineModel;
  before(async () => {
    m = await loadTinyLlava();
    model = await tinyLlavaEngineModel(m);
  });

  it('has the vision facts of the fixture: 16 image tokens of image token 0, CLS, feature block 1', () => {
    assert.deepEqual(model.facts.vision, {
      layers: 3, heads: 4, patches: 16, hasCls: true, featureBlock: 1, tokensPerImage: 16, tokensArePatches: true, imageTokenId: 0,
    });
  });

  for (const file of TINY_LLAVA_IMAGES) {
    it(`equals the float64 reference on ${file}: every prompt position and a ${DECODE}-token greedy decode`, async () => {
      const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
      assert.deepEqual(prompt.images, [{ image: 0, start: prompt.ids.indexOf(0), length: 16 }]);
      const image = await tinyLlavaImage(m, file);
      const engine = new InProcessEngine(model, {}, true);
      const run = await engine.run(imageRequest('x', prompt, [image], { maxTokens: DECODE, ignoreEos: true, promptLogprobs: 0 }));
      assert.equal(run.tokenIds.length, DECODE);
      checkAgainstReference(m, run, prompt, [image], file);
    });
  }

  it('two images in one prompt, prefilled in chunks that cut through an image span', async () => {
    const prompt = tinyLlavaPrompt(m, 'Which one is brighter?', 2);
    assert.equal(prompt.images.length, 2);
    assert.equal(prompt.images[1]!.start, prompt.images[0]!.start + 16 + 1, 'the template writes "<image>\\n" per image');
    const images = [await tinyLlavaImage(m, 'half_bright.png'), await tinyLlavaImage(m, 'checker.png')];
    const engine = new InProcessEngine(model, { prefillChunk: 7 }, true);
    const run = await engine.run(imageRequest('two', prompt, images, { maxTokens: 12, ignoreEos: true, promptLogprobs: 0 }));
    checkAgainstReference(m, run, prompt, images, 'two images, chunked');
    const swapped = await new InProcessEngine(model, {}, true).run(imageRequest('sw', prompt, [images[1]!, images[0]!], { maxTokens: 12, ignoreEos: true }));
    assert.notDeepEqual(swapped.logits.get(prompt.ids.length - 1), run.logits.get(prompt.ids.length - 1), 'image order matters');
  });

  it('a text-only request runs exactly the language model: stories260K\'s logits for the same ids', async () => {
    const prompt = tinyLlavaPrompt(m, 'Once upon a time, there was a dog.', 0);
    const stories = await fixtureEngineModel(await loadLlama2cFixture(stories260K));
    const a = await new InProcessEngine(model, {}, true).run(request('t', prompt.ids, { maxTokens: 20, promptLogprobs: 0 }));
    const b = await new InProcessEngine(stories, {}, true).run(request('s', prompt.ids, { maxTokens: 20, promptLogprobs: 0 }));
    assert.deepEqual(a.tokenIds, b.tokenIds);
    // The HF layout's q/k rows are served in llama2.c's interleaved order, so the graphs are the same.
    for (const [pos, logits] of b.logits) assert.ok(logits.every((v, k) => Object.is(v, a.logits.get(pos)![k])), `position ${pos}`);
  });

  it('a batch mixing text-only and image rows gives each row its solo result', async () => {
    const prompts = [tinyLlavaPrompt(m, 'Describe it.', 1), tinyLlavaPrompt(m, 'Tell me a story.', 0), tinyLlavaPrompt(m, 'Compare them.', 2), tinyLlavaPrompt(m, 'What color?', 1)];
    const images = [
      [await tinyLlavaImage(m, 'one_bright_patch.png')],
      [],
      [await tinyLlavaImage(m, 'noise_two_bright.png'), await tinyLlavaImage(m, 'half_bright.png')],
      [await tinyLlavaImage(m, 'one_bright_patch.png')], // the same image as row 0: encoded once in the step
    ];
    const sampling = { maxTokens: 10, ignoreEos: true, promptLogprobs: 0 };
    const solo = await Promise.all(prompts.map((p, i) => new InProcessEngine(model, {}, true).run(imageRequest(`s${i}`, p, images[i]!, sampling))));
    const engine = new InProcessEngine(model, { maxBatch: 4 }, true);
    const runs = prompts.map((p, i) => engine.submit(imageRequest(`b${i}`, p, images[i]!, sampling)));
    await engine.drain();
    runs.forEach((r, i) => {
      assert.deepEqual(r.tokenIds, solo[i]!.tokenIds, `row ${i}`);
      let worst = 0;
      for (const [pos, logits] of solo[i]!.logits) worst = Math.max(worst, maxAbsDiff(r.logits.get(pos)!, logits));
      assert.ok(worst < 1e-5, `row ${i}: worst ${worst}`);
      if (images[i]!.length) assert.ok(r.finish!.timing.encodeMs > 0, `row ${i} spent encoder time`);
      else assert.equal(r.finish!.timing.encodeMs, 0);
    });
  });

  it('refuses requests whose images do not match their placeholders or the tower\'s input size, and images on a model without a tower', async () => {
    const prompt = tinyLlavaPrompt(m, 'Hi', 1);
    const image = await tinyLlavaImage(m, 'checker.png');
    const engine = new InProcessEngine(model);
    assert.throws(() => engine.submit(request('no-image', prompt.ids)), /holds 16 image tokens .* but its 0 image\(s\) fill 0/);
    assert.throws(() => engine.submit({ ...request('short', prompt.ids), images: { spans: [{ ...prompt.images[0]!, length: 8 }], inputs: [image] } }), /fill 8/);
    const cropped = { ...image, pixels: image.pixels.subarray(0, image.pixels.length - 1) };
    assert.throws(() => engine.submit(imageRequest('cropped', prompt, [cropped])), /image 0 has 3071 pixel values; the vision tower takes 3072/);
    const stories = await fixtureEngineModel(await loadLlama2cFixture(stories260K));
    assert.throws(() => new InProcessEngine(stories).submit(imageRequest('txt', prompt, [image])), /has no vision tower/);
  });
});
