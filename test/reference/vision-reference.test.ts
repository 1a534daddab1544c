/**
 * The float64 vision reference's own checks: its erf, its hidden states and attentions against what
 * the features are made of, and the splice feeding the decoder reference.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadHfDecoder } from '../../models/checkpoint/hf-decoder.js';
import { loadLlavaVision, type LlavaVision } from '../../models/checkpoint/llava-vision.js';
import { preprocessImage } from '../../src/api/images/preprocess.js';
import { modelsDir } from '../helpers/models-dir.js';
import { ReferenceDecoder } from './reference-forward.js';
import { erf, ReferenceVision, spliceImageFeatures } from './vision-reference.js';

const tinyLlava = join(modelsDir, 'tiny-llava');

describe('float64 vision reference', () => {
  let vision: LlavaVision;
  let lm: DecoderWeights;
  let images: Float64Array[][];
  before(async () => {
    vision = await loadLlavaVision(tinyLlava);
    lm = await loadHfDecoder(tinyLlava);
    const ref = new ReferenceVision(vision.weights);
    images = await Promise.all(
      ['half_bright.png', 'checker.png'].map(async (f) => {
        const bytes = readFileSync(join(tinyLlava, 'images', f));
        const pre = await preprocessImage(bytes, vision.preprocessing, { param: f, limits: { maxImageBytes: 1 << 20, maxImagePixels: 1 << 20 } });
        return ref.forward(pre.pixels).features;
      }),
    );
  });

  it('erf matches tabulated values to double precision', () => {
    // Abramowitz & Stegun table 7.1 and erf(∞) = 1.
    for (const [x, v] of [[0, 0], [0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [3, 0.9999779095030014]]) {
      assert.ok(Math.abs(erf(x!) - v!) < 1e-15, `erf(${x}) = ${erf(x!)}`);
      assert.ok(Math.abs(erf(-x!) + v!) < 1e-15);
    }
    assert.equal(erf(7), 1);
  });

  it('exposes every hidden state and each computed block’s attention rows, which sum to 1', () => {
    const ref = new ReferenceVision(vision.weights);
    const out = ref.forward(new Float32Array(3 * 32 * 32).fill(0.25), { blocks: 3 });
    assert.equal(out.hiddenStates.length, 4);
    assert.equal(out.attentions.length, 3);
    assert.deepEqual([out.attentions[0]!.length, out.attentions[0]![0]!.length, out.attentions[0]![0]![0]!.length], [4, 17, 17]);
    for (const layer of out.attentions) for (const head of layer) for (const row of head) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    // Computing more blocks does not change the features (they come from hidden state 2).
    assert.deepEqual(out.features, ref.forward(new Float32Array(3 * 32 * 32).fill(0.25)).features);
  });

  it('splices two images into the prompt in order, as { embeds } the decoder reference takes', () => {
    const id = vision.spec.imageTokenId;
    const text = [1, 400, 13];
    const prompt = [...text, ...Array(16).fill(id), 29, ...Array(16).fill(id), 30];
    const embeds = spliceImageFeatures(lm, prompt, id, images);
    assert.equal(embeds.length, prompt.length);
    assert.deepEqual(embeds[3], images[0]![0]);
    assert.deepEqual(embeds[18], images[0]![15]);
    assert.deepEqual(embeds[19], Float64Array.from(lm.tokenEmbedding.subarray(29 * 64, 30 * 64)));
    assert.deepEqual(embeds[20], images[1]![0]);
    const decoder = new ReferenceDecoder(lm);
    const logits = decoder.step({ embeds });
    assert.equal(logits.length, prompt.length);
    assert.ok(logits.every((row) => row.every(Number.isFinite)));
    // Text positions before the first image see exactly what token ids give them.
    const textOnly = new ReferenceDecoder(lm).step({ tokens: text });
    assert.deepEqual(logits.slice(0, 3), textOnly);
  });

  it('refuses a prompt whose image tokens do not match the features', () => {
    assert.throws(() => spliceImageFeatures(lm, [1, ...Array(15).fill(0)], 0, [images[0]!]), /the prompt has 15 image tokens, but the images give 16 features/);
  });
});
