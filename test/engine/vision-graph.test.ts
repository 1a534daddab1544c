/**
 * The compiled vision graph in onnxruntime against the float64 reference (test/reference/vision-reference.ts):
 * tiny-llava on every fixture image, decoded from its PNG and preprocessed as a request's image is;
 * random towers covering what tiny-llava does not (exact GELU in the tower, the `full` strategy, the
 * newer tensor layout, every block computed, a bias-free projector); and read-only taps.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { loadLlavaVision, type LlavaVision } from '../../models/checkpoint/llava-vision.js';
import { featureBlock, visionSeqLen, type VisionConfig, type VisionWeights } from '../../models/checkpoint/vision-weights.js';
import { compileVision, type CompiledVision } from '../../models/compiler/vision-graph.js';
import type { VisionTapFragment } from '../../models/compiler/vision-hooks.js';
import { visionServedWeights } from '../../models/compiler/vision-served-weights.js';
import type { Value } from '../../models/onnx/graph-builder.js';
import { onnx } from '../../models/onnx/onnx-proto.js';
import { inlineWeights, type WeightProvider } from '../../models/onnx/weights.js';
import { preprocessImage } from '../../src/api/images/preprocess.js';
import { VisionSession } from '../../src/engine/vision-session.js';
import { modelsDir } from '../helpers/models-dir.js';
import { Prng } from '../helpers/prng.js';
import { randomLlava, writeLlava, type RandomLlavaOptions } from '../helpers/random-llava.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { ReferenceVision } from '../reference/vision-reference.js';

const TOLERANCE = 1e-5;
const tinyLlava = join(modelsDir, 'tiny-llava');
const fixtureImages = readdirSync(join(tinyLlava, 'images')).filter((f) => f.endsWith('.png')).sort();
const limits = { maxImageBytes: 10 * 2 ** 20, maxImagePixels: 2 ** 24 };

function maxAbsDiff(actual: ArrayLike<number>, expected: readonly ArrayLike<number>[]): number {
  const width = expected[0]!.length;
  assert.equal(actual.length, expected.length * width, 'element count');
  let worst = 0;
  expected.forEach((row, i) => {
    for (let d = 0; d < width; d++) worst = Math.max(worst, Math.abs(actual[i * width + d]! - row[d]!));
  });
  return worst;
}

async function withSession<T>(graph: CompiledVision, fn: (s: VisionSession) => Promise<T>): Promise<T> {
  const s = await VisionSession.create(graph);
  try {
    return await fn(s);
  } finally {
    await s.release();
  }
}

/** PAINT's selection scores: the CLS query's attention row, summed over heads, over the patches. */
function clsAttentionTap(owner: string, layers: (l: number, c: VisionConfig) => boolean): VisionTapFragment {
  return {
    owner,
    hook: 'attn.hook_pattern',
    layers,
    tap(x: Value, ctx) {
      const { g, config } = ctx;
      const S = visionSeqLen(config);
      const i64 = (v: number[]) => g.constInt64(v);
      const clsRow = g.op('Slice', [x, i64([0]), i64([1]), i64([2])]); // [N,H,1,S]
      const summed = g.op('ReduceSum', [clsRow, i64([1, 2])], { keepdims: { kind: 'int', value: 0 } }); // [N,S]
      ctx.tap(`cls_attn.${ctx.layer}`, g.op('Slice', [summed, i64([1]), i64([S]), i64([1])]), [S - 1]);
    },
  };
}

/** The reference's counterpart: Σ_heads attentions[l][h][0][1..S]. */
function referenceClsAttention(attn: Float64Array[][]): Float64Array {
  const S = attn[0]!.length;
  const out = new Float64Array(S - 1);
  for (const head of attn) for (let j = 1; j < S; j++) out[j - 1]! += head[0]![j]!;
  return out;
}

describe('vision graph against the float64 reference', () => {
  let tiny: LlavaVision;
  let reference: ReferenceVision;
  let pixels: Float32Array[];
  before(async () => {
    tiny = await loadLlavaVision(tinyLlava);
    reference = new ReferenceVision(tiny.weights);
    pixels = await Promise.all(
      fixtureImages.map(async (f, i) =>
        (await preprocessImage(readFileSync(join(tinyLlava, 'images', f)), tiny.preprocessing, { param: `images.${i}`, limits })).pixels),
    );
  });

  it(`tiny-llava: features within ${TOLERANCE} on every fixture image, alone and batched`, async () => {
    assert.ok(fixtureImages.length >= 5, `fixture images: ${fixtureImages.join(', ')}`);
    const graph = compileVision(tiny.weights);
    assert.equal(graph.tokensPerImage, 16);
    assert.equal(graph.lmDim, 64);
    assert.equal(graph.blocksComputed, 2);
    await withSession(graph, async (s) => {
      await assert.rejects(s.run([new Float32Array(10)]), /image 0: 10 values, the vision graph takes 3072 \(3×32×32\)/);
      assert.deepEqual(await s.run([]), []);
      const batched = await s.run(pixels);
      for (const [i, file] of fixtureImages.entries()) {
        const expected = reference.forward(pixels[i]!).features;
        const [alone] = await s.run([pixels[i]!]);
        assert.ok(maxAbsDiff(alone!.features, expected) <= TOLERANCE, `${file} alone: ${maxAbsDiff(alone!.features, expected)}`);
        assert.ok(maxAbsDiff(batched[i]!.features, expected) <= TOLERANCE, `${file} in a batch: ${maxAbsDiff(batched[i]!.features, expected)}`);
      }
    });
  });

  it("tiny-llava: the planted sinks show in LM dimension 40 for bright patches only (the README's structure)", async () => {
    const halfBright = fixtureImages.indexOf('half_bright.png');
    const features = reference.forward(pixels[halfBright]!).features;
    // Left half white: patch columns 0 and 1 of each of the 4 rows are bright.
    const bright = features.map((_, p) => p % 4 < 2);
    features.forEach((row, p) => assert.equal(row[40]! > 5, bright[p], `patch ${p}: dim 40 = ${row[40]}`));
  });

  const towers: [string, RandomLlavaOptions][] = [
    ['exact GELU, strategy full, newer layout, every block', { layout: 'newer', hiddenAct: 'gelu', strategy: 'full', featureLayer: -1, seed: 3 }],
    ['quick_gelu projector without biases, features from the pre_layrnorm output', { projectorAct: 'quick_gelu', projectorBias: false, featureLayer: 0, seed: 5 }],
    ['an image size the patch does not divide, feature layer counted from the start', { imageSize: 26, patchSize: 6, featureLayer: 2, seed: 9 }],
  ];
  for (const [what, opts] of towers) {
    it(`a random tower: ${what}`, async () => {
      await withTempDir(async (dir) => {
        await writeLlava(dir, randomLlava(opts));
        const v = await loadLlavaVision(dir);
        const c = v.weights.config;
        const rng = new Prng(opts.seed ?? 1);
        const images = Array.from({ length: 3 }, () => Float32Array.from({ length: 3 * c.imageSize ** 2 }, () => rng.float() * 4 - 2));
        const ref = new ReferenceVision(v.weights);
        await withSession(compileVision(v.weights), async (s) => {
          const out = await s.run(images);
          images.forEach((img, i) => {
            const diff = maxAbsDiff(out[i]!.features, ref.forward(img).features);
            assert.ok(diff <= TOLERANCE, `image ${i}: ${diff}`);
          });
        });
      });
    });
  }

  it('taps deliver the head-summed CLS attention of block 0 and of the feature block, and change nothing', async () => {
    const c = tiny.weights.config;
    const paint = clsAttentionTap('paint', (l, cfg) => l === 0 || l === featureBlock(cfg));
    const resid: VisionTapFragment = {
      owner: 'probe',
      hook: 'hook_resid_pre',
      layers: (l) => l === 1,
      tap: (x, ctx) => ctx.tap('resid.1', x, [visionSeqLen(ctx.config), ctx.config.hiddenSize]),
    };
    const plain = compileVision(tiny.weights);
    const tapped = compileVision(tiny.weights, { taps: [paint, resid] });
    assert.equal(tapped.blocksComputed, plain.blocksComputed, 'taps inside the computed blocks add no block');
    assert.deepEqual(
      tapped.taps.map((t) => [t.owner, t.name, t.output, t.dims, t.layer, t.hook]),
      [
        ['paint', 'cls_attn.0', 'tap.paint.cls_attn.0', [16], 0, 'attn.hook_pattern'],
        ['probe', 'resid.1', 'tap.probe.resid.1', [17, 32], 1, 'hook_resid_pre'],
        ['paint', 'cls_attn.1', 'tap.paint.cls_attn.1', [16], 1, 'attn.hook_pattern'],
      ],
    );
    const [withTaps, without] = await Promise.all([withSession(tapped, (s) => s.run(pixels)), withSession(plain, (s) => s.run(pixels))]);
    pixels.forEach((img, i) => {
      const ref = reference.forward(img);
      assert.deepEqual(withTaps[i]!.features, without[i]!.features, 'features are bit-identical with and without taps');
      for (const layer of [0, featureBlock(c)]) {
        const tap = withTaps[i]!.taps.paint![`cls_attn.${layer}`]!;
        assert.deepEqual(tap.dims, [16]);
        const diff = maxAbsDiff(tap.data, [referenceClsAttention(ref.attentions[layer]!)]);
        assert.ok(diff <= TOLERANCE, `${fixtureImages[i]} layer ${layer}: ${diff}`);
      }
      const r = withTaps[i]!.taps.probe!['resid.1']!;
      assert.deepEqual(r.dims, [17, 32]);
      assert.ok(maxAbsDiff(r.data, ref.hiddenStates[1]!) <= TOLERANCE);
    });
    // The planted head 0 makes CLS attend to bright patches: in one_bright_patch.png, patch 6.
    const oneBright = withTaps[fixtureImages.indexOf('one_bright_patch.png')]!.taps.paint!['cls_attn.0']!.data;
    assert.equal(oneBright.indexOf(Math.max(...oneBright)), 6);
  });

  it('a tap on a block past the features computes that block through its attention only', async () => {
    const tapped = compileVision(tiny.weights, { taps: [clsAttentionTap('late', (l) => l === 2)] });
    assert.equal(tapped.blocksComputed, 2, 'block 2 is not computed whole');
    const plain = compileVision(tiny.weights);
    assert.ok(tapped.nodeCount < plain.nodeCount + 25, `block 2 adds ${tapped.nodeCount - plain.nodeCount} nodes, attention only`);
    const [withTap, without] = await Promise.all([withSession(tapped, (s) => s.run(pixels)), withSession(plain, (s) => s.run(pixels))]);
    pixels.forEach((img, i) => {
      const ref = reference.forward(img, { blocks: 3 });
      assert.deepEqual(withTap[i]!.features, without[i]!.features);
      const diff = maxAbsDiff(withTap[i]!.taps.late!['cls_attn.2']!.data, [referenceClsAttention(ref.attentions[2]!)]);
      assert.ok(diff <= TOLERANCE, `${fixtureImages[i]}: ${diff}`);
    });
  });

  it('refuses a tap on a block the checkpoint does not store, and a tap name used twice', () => {
    const twoBlocks: VisionWeights = { ...tiny.weights, layers: tiny.weights.layers.slice(0, 2) };
    assert.throws(() => compileVision(twoBlocks, { taps: [clsAttentionTap('late', (l) => l === 2)] }),
      /vision block 2 is needed \(by taps of late\), but the checkpoint does not store it/);
    const sameName: VisionTapFragment = { owner: 'x', hook: 'hook_resid_pre', tap: (v, ctx) => ctx.tap('same', v, [17, 32]) };
    assert.throws(() => compileVision(tiny.weights, { taps: [sameName] }), /x declares the tap same twice/);
  });

  it('takes every weight from the WeightProvider and builds no weight initializer of its own', () => {
    const served = visionServedWeights(tiny.weights);
    const inner = inlineWeights(served);
    const asked = new Set<string>();
    const recording: WeightProvider = {
      has: (n) => inner.has(n),
      tensor: (g, n) => (asked.add(n), inner.tensor(g, n)),
      linear: (g, x, n) => (asked.add(n), inner.linear(g, x, n)),
    };
    const graph = compileVision({ config: tiny.weights.config, weights: recording });
    const initializers = onnx.ModelProto.decode(graph.bytes).graph!.initializer!.map((t) => t.name!);
    const own = initializers.filter((n) => !asked.has(n));
    assert.ok(own.every((n) => n.startsWith('const_')), `initializers not from the provider: ${own.join(', ')}`);
    // Blocks 0 and 1 are read; block 2, after the feature layer, is not.
    assert.ok(asked.has('vision.layers.1.fc2') && !asked.has('vision.layers.2.qkv_proj'));
    const unread = [...served.keys()].filter((n) => !asked.has(n) && !n.startsWith('vision.layers.2.'));
    assert.deepEqual(unread, []);
  });
});
