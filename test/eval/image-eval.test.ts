/**
 * Image items for `attune eval` and the shipped synthetic task for tiny-llava: the generator
 * reproduces the shipped files; an item becomes the chat turn a request would render (image, then
 * prompt, each choice as the assistant's reply) with its image attached; and the scores the eval
 * computes through the real engine worker, plain and with VAR, equal the float64 reference's
 * (with test/reference/var-reference.ts for the VAR arm).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { generate } from '../../models/eval/tiny-llava-images/generate.js';
import { DatasetError, loadDataset, parseDataset, type Dataset } from '../../src/eval/dataset.js';
import { prepareImageTask } from '../../src/eval/image-items.js';
import { imagePromptContext, type ImagePromptContext } from '../../src/eval/image-prompt.js';
import { loadEvalModel, startEvalEngine, type EvalEngine } from '../../src/eval/session.js';
import { PrepareError, prepareTask, taskSpans, type PreparedTask } from '../../src/eval/prepare.js';
import { scoreSpans } from '../../src/eval/scorer.js';
import { resolveCalibration } from '../../src/eval/calibration-arg.js';
import type { VarConfig } from '../../calibrators/var.js';
import { loadTinyLlava, referenceRun, tinyLlavaImage, tinyLlavaPrompt, type TinyLlava } from '../helpers/tiny-llava.js';
import { modelsDir, repoRoot } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { VarReference } from '../reference/var-reference.js';

const TASK_DIR = join(repoRoot, 'models', 'eval', 'tiny-llava-images');
const ITEMS = join(TASK_DIR, 'items.jsonl');

const rawPixels = async (path: string) => (await sharp(path).raw().toBuffer({ resolveWithObject: true }));

function logSoftmax(logits: Float64Array, token: number): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return logits[token]! - max - Math.log(sum);
}

describe('the synthetic image task for tiny-llava', () => {
  it('is what its generator produces (items and decoded pixels), 60 items, answers balanced per question', async () => {
    await withTempDir(async (dir) => {
      const items = await generate(dir);
      assert.equal(readFileSync(join(dir, 'items.jsonl'), 'utf8'), readFileSync(ITEMS, 'utf8'));
      assert.deepEqual(readdirSync(join(dir, 'images')).sort(), readdirSync(join(TASK_DIR, 'images')).sort());
      for (const item of items) {
        const [a, b] = await Promise.all([rawPixels(join(dir, item.image)), rawPixels(join(TASK_DIR, item.image))]);
        assert.deepEqual(a.info, b.info);
        assert.ok(a.data.equals(b.data), item.image);
      }
      assert.equal(items.length, 60);
      for (const prompt of new Set(items.map((i) => i.prompt))) {
        const answers = items.filter((i) => i.prompt === prompt).map((i) => i.answer);
        assert.equal(answers.filter((a) => a === 0).length, answers.length / 2, prompt);
      }
    });
  });

  it('a file mixing image and text items is refused with the line; text commands refuse image items', () => {
    const mixed = '{"image":"a.png","prompt":"p","choices":[" a"," b"],"answer":0}\n{"prompt":"p","choices":[" a"," b"],"answer":1}\n';
    assert.throws(() => parseDataset(mixed, 'x.jsonl'), (e: Error) => e instanceof DatasetError && /x\.jsonl:2: lacks an image while line 1 has one/.test(e.message));
    const images = parseDataset(mixed.split('\n')[0]!, 'x.jsonl');
    assert.throws(() => prepareTask(images, { encode: () => [1] } as never), PrepareError);
  });
});

describe('image items through the eval path (tiny-llava, real engine worker)', () => {
  let m: TinyLlava;
  let ctx: ImagePromptContext;
  let engine: EvalEngine;
  let data: Extract<Dataset, { kind: 'mc' }>;
  let task: Extract<PreparedTask, { kind: 'mc' }>;
  before(async () => {
    m = await loadTinyLlava();
    // By path: the shared models directory need not be in ATTUNE_MODELS_DIR.
    const model = await loadEvalModel(join(modelsDir, 'tiny-llava'));
    ctx = await imagePromptContext(model);
    engine = await startEvalEngine(model, model.profile);
    const all = (await loadDataset(ITEMS)) as Extract<Dataset, { kind: 'mc' }>;
    // One item of each question, each with both choices.
    data = { kind: 'mc', items: [all.items[1]!, all.items[22]!, all.items[45]!] };
    task = (await prepareImageTask(data, ITEMS, ctx)) as Extract<PreparedTask, { kind: 'mc' }>;
  });
  after(async () => {
    await engine.client.close();
  });

  it('an item is the chat turn a request renders, each choice the assistant\'s reply, the image attached', async () => {
    assert.equal(task.boundaryFallbacks, 0);
    data.items.forEach((item, i) => {
      const prompt = tinyLlavaPrompt(m, item.prompt, 1);
      for (const [c, span] of task.items[i]!.choices.entries()) {
        assert.equal(span.start, prompt.ids.length);
        assert.deepEqual(span.ids.slice(0, span.start), prompt.ids);
        assert.equal(m.tokenizer.decode(span.ids.slice(span.start)), item.choices[c]);
        assert.deepEqual(span.images!.spans, prompt.images);
      }
    });
    const image = await tinyLlavaImage(m, readFileSync(join(TASK_DIR, data.items[0]!.image!)));
    assert.deepEqual(task.items[0]!.choices[0]!.images!.inputs[0]!.pixels, image.pixels, 'preprocessed as the chat route does');
  });

  it('plain and VAR scores equal the float64 reference (VAR with the official semantics) within 1e-4', async () => {
    const calibration = resolveCalibration({ var: { recycle_fraction: 0.8, min_nonsink_ratio: 0.2 } }, engine.facts);
    const cfg = calibration.var as VarConfig;
    const spans = taskSpans(task);
    const [plain, withVar] = await scoreSpans(engine.client, spans, [{}, calibration]);
    let changed = 0;
    for (const [k, span] of spans.entries()) {
      const image = span.images!.inputs[0]!;
      const prompt = { ids: span.ids, text: '', images: span.images!.spans };
      const sum = (logits: Float64Array[]) => span.ids.slice(span.start).reduce((acc, t, j) => acc + logSoftmax(logits[span.start + j - 1]!, t), 0);
      const ref = new VarReference({ recycle: cfg.recycleFraction, minNonsinkRatio: cfg.minNonsinkRatio, minImageAttention: cfg.minImageAttention, tau: cfg.tau, sinkDims: cfg.sinkDims, layers: cfg.layers }, prompt.images, span.ids.length);
      const expectedPlain = sum(referenceRun(m, prompt, [image], []).promptLogits);
      const expectedVar = sum(referenceRun(m, prompt, [image], [], [['*', ref.hook]]).promptLogits);
      assert.ok(Math.abs(plain![k]! - expectedPlain) < 1e-4, `span ${k} plain: ${plain![k]} vs ${expectedPlain}`);
      assert.ok(Math.abs(withVar![k]! - expectedVar) < 1e-4, `span ${k} VAR: ${withVar![k]} vs ${expectedVar}`);
      if (Math.abs(expectedVar - expectedPlain) > 1e-3) changed++;
    }
    assert.ok(changed >= 4, `VAR moves most scores (${changed} of ${spans.length})`);
  });
});
