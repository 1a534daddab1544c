import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadHfDecoder } from '../../models/checkpoint/hf-decoder.js';
import { parseImageProcessorConfig } from '../../models/checkpoint/image-processor-config.js';
import { parseLlavaVisionConfig } from '../../models/checkpoint/llava-config.js';
import { loadLlavaVision, readLlavaVisionAssets } from '../../models/checkpoint/llava-vision.js';
import { featureBlock, tokensPerImage } from '../../models/checkpoint/vision-weights.js';
import { modelsDir } from '../helpers/models-dir.js';
import { randomLlava, writeLlava, type RandomLlava, type RandomLlavaOptions } from '../helpers/random-llava.js';
import { withTempDir } from '../helpers/temp-dir.js';

const tinyLlava = join(modelsDir, 'tiny-llava');

/** Writes a random checkpoint, lets `edit` change it first, and loads its vision side. */
function loadEdited(opts: RandomLlavaOptions, edit: (m: RandomLlava) => void) {
  return withTempDir(async (dir) => {
    const m = randomLlava(opts);
    edit(m);
    await writeLlava(dir, m);
    return loadLlavaVision(dir);
  });
}

describe('LLaVA vision loader', () => {
  it("reads tiny-llava's tower, feature layer and preprocessing", async () => {
    const v = await loadLlavaVision(tinyLlava);
    const c = v.weights.config;
    assert.deepEqual(
      { hidden: c.hiddenSize, heads: c.nHeads, layers: c.nLayers, image: c.imageSize, patch: c.patchSize, act: c.hiddenAct, eps: c.layerNormEps },
      { hidden: 32, heads: 4, layers: 3, image: 32, patch: 8, act: 'quick_gelu', eps: 1e-5 },
    );
    // vision_feature_layer −2 of 4 hidden states: the output of block 1, so two blocks are computed.
    assert.equal(c.featureLayer, 2);
    assert.equal(featureBlock(c), 1);
    assert.equal(tokensPerImage(c), 16);
    assert.equal(v.spec.imageSeqLength, 16);
    assert.equal(v.spec.imageTokenId, 0);
    assert.equal(c.lmDim, 64);
    assert.equal(c.projectorAct, 'gelu');
    // Block 2 comes after the feature layer: it is stored, so it is loaded (a tap may read it).
    assert.equal(v.weights.layers.length, 3);
    assert.deepEqual(v.preprocessing.resize, { shortestEdge: 32 });
    assert.deepEqual(v.preprocessing.centerCrop, { height: 32, width: 32 });
    assert.equal(v.preprocessing.padToSquare, false);
    // LLaVA's pad colour is int(mean · 255), truncated: 0.48145466·255 = 122.77 → 122.
    assert.deepEqual(v.preprocessing.padColor, [122, 116, 104]);
  });

  it('loads the newer model.* layout, and the language model still loads from the same directory', async () => {
    await withTempDir(async (dir) => {
      const m = randomLlava({ layout: 'newer', hiddenAct: 'gelu', strategy: 'full', featureLayer: -1 });
      await writeLlava(dir, m);
      const v = await loadLlavaVision(dir);
      assert.equal(v.weights.config.hiddenAct, 'gelu');
      assert.equal(v.weights.config.selectStrategy, 'full');
      assert.equal(v.weights.config.featureLayer, 3);
      assert.equal(tokensPerImage(v.weights.config), 17);
      const stored = m.tensors[`${m.tower}encoder.layers.1.mlp.fc1.weight`]!.data;
      assert.deepEqual(v.weights.layers[1]!.fc1.weight, stored);
      const lm = await loadHfDecoder(dir);
      assert.equal(lm.config.dim, 20);
    });
  });

  it('allows unused tensors (post_layernorm, position_ids, blocks after the feature layer) and their absence', async () => {
    const v = await loadEdited({ layers: 3 }, (m) => {
      m.tensors[`${m.tower}embeddings.position_ids`] = { dtype: 'F32', shape: [1, 17], data: new Float32Array(17) };
      delete m.tensors[`${m.tower}post_layernorm.weight`];
      delete m.tensors[`${m.tower}post_layernorm.bias`];
      for (const name of Object.keys(m.tensors)) if (name.includes('encoder.layers.2.')) delete m.tensors[name];
    });
    assert.equal(v.weights.layers.length, 2);
  });

  it('reads a bias-free projector', async () => {
    const v = await loadEdited({ projectorBias: false }, () => {});
    assert.equal(v.weights.projector.linear1.bias, undefined);
  });

  const refusals: [string, RandomLlavaOptions, (m: RandomLlava) => void, RegExp][] = [
    ['a missing tensor the features need', {}, (m) => void delete m.tensors[`${m.tower}encoder.layers.1.self_attn.k_proj.bias`],
      /vision_tower\.vision_model\.encoder\.layers\.1\.self_attn\.k_proj\.bias/],
    ['a block after the feature layer stored in part', {}, (m) => void delete m.tensors[`${m.tower}encoder.layers.2.mlp.fc2.bias`],
      /block 2 of the vision tower is partly stored: .*encoder\.layers\.2\.mlp\.fc2\.bias is missing/],
    ['a shape the config disagrees with', {}, (m) => {
      m.tensors[`${m.projector}linear_1.weight`] = { dtype: 'F32', shape: [20, 25], data: new Float32Array(500) };
    }, /multi_modal_projector\.linear_1\.weight: stored shape \[20, 25\], but config\.json implies \[20, 24\]/],
    ['an unknown tensor in the tower', {}, (m) => {
      m.tensors[`${m.tower}encoder.layers.0.self_attn.rel_bias`] = { dtype: 'F32', shape: [3], data: new Float32Array(3) };
    }, /vision tower and projector have tensors this loader does not know.*self_attn\.rel_bias/],
    ['a block the config does not declare', {}, (m) => {
      m.tensors[`${m.tower}encoder.layers.3.layer_norm1.weight`] = { dtype: 'F32', shape: [24], data: new Float32Array(24) };
    }, /encoder\.layers\.3\.layer_norm1\.weight/],
    ['a tensor of neither side', {}, (m) => {
      m.tensors['image_newline'] = { dtype: 'F32', shape: [20], data: new Float32Array(20) };
    }, /belong to neither the language model nor the vision tower.*image_newline/],
    ['a projector bias the config says is absent', {}, (m) => {
      m.config.multimodal_projector_bias = false;
    }, /multi_modal_projector\.linear_1\.bias/],
    ['a list of feature layers', {}, (m) => {
      m.config.vision_feature_layer = [-2, -5];
    }, /vision_feature_layer: a list .* is not supported/],
    ['a feature layer past the tower', {}, (m) => {
      m.config.vision_feature_layer = -5;
    }, /vision_feature_layer: -5 is outside/],
    ['an unknown activation', {}, (m) => {
      (m.config.vision_config as Record<string, unknown>).hidden_act = 'relu';
    }, /vision_config\.hidden_act: relu is not supported/],
    ['an unknown projector activation', {}, (m) => {
      m.config.projector_hidden_act = 'gelu_pytorch_tanh';
    }, /projector_hidden_act: gelu_pytorch_tanh is not supported/],
    ['an unknown select strategy', {}, (m) => {
      m.config.vision_feature_select_strategy = 'cls_patch';
    }, /vision_feature_select_strategy: cls_patch is not supported/],
    ['a SigLIP tower', {}, (m) => {
      (m.config.vision_config as Record<string, unknown>).model_type = 'siglip_vision_model';
    }, /vision_config\.model_type: siglip_vision_model is not supported/],
    ['image_seq_length that disagrees with the tower', {}, (m) => {
      m.config.image_seq_length = 576;
    }, /image_seq_length: 576, but the tower gives 16 tokens per image/],
    ['an image token outside the vocabulary', {}, (m) => {
      m.config.image_token_index = 40;
    }, /image_token_index: 40 is outside the vocabulary/],
    ['preprocessing that does not give the tower its size', {}, (m) => {
      m.preprocessor.crop_size = { height: 28, width: 28 };
    }, /preprocessor_config\.json: the preprocessing yields 28x28, but the vision tower takes 24x24/],
    ['LLaVA-NeXT anyres', {}, (m) => {
      m.config.image_aspect_ratio = 'anyres';
    }, /image_aspect_ratio: anyres is not supported/],
  ];
  for (const [what, opts, edit, message] of refusals) {
    it(`refuses ${what}, naming it`, async () => {
      await assert.rejects(loadEdited(opts, edit), message);
    });
  }

  it('refuses a model without a vision tower', async () => {
    await assert.rejects(
      loadEdited({}, (m) => {
        for (const name of Object.keys(m.tensors)) if (name.startsWith(m.tower)) delete m.tensors[name];
      }),
      /has no vision tower \(no vision_tower\.vision_model\.embeddings\.class_embedding or model\.vision_tower/,
    );
    assert.throws(() => parseLlavaVisionConfig({ architectures: ['LlamaForCausalLM'], hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 8, max_position_embeddings: 8, rms_norm_eps: 1e-5 }),
      /LlamaForCausalLM has no vision tower/);
  });

  it("takes transformers' defaults for omitted fields", () => {
    const spec = parseLlavaVisionConfig({
      architectures: ['LlavaForConditionalGeneration'],
      text_config: { model_type: 'llama', hidden_size: 4096, vocab_size: 32064 },
    });
    // No vision_config: LlavaConfig's CLIP ViT-L/14-336, feature layer −2, 576 image tokens, token 32000.
    assert.deepEqual(
      [spec.config.hiddenSize, spec.config.nLayers, spec.config.imageSize, spec.config.patchSize, spec.config.hiddenAct, spec.config.featureLayer],
      [1024, 24, 336, 14, 'quick_gelu', 23],
    );
    assert.equal(spec.imageSeqLength, 576);
    assert.equal(spec.imageTokenId, 32000);
    const p = parseImageProcessorConfig({ size: 336, crop_size: 336 });
    assert.deepEqual([p.resize, p.centerCrop, p.resample, p.rescaleFactor], [{ shortestEdge: 336 }, { height: 336, width: 336 }, 'bicubic', 1 / 255]);
  });

  it('takes pad-to-square from config.json or a LlavaImageProcessor, and refuses filters it does not implement', async () => {
    await withTempDir(async (dir) => {
      const m = randomLlava();
      m.config.image_aspect_ratio = 'pad';
      await writeLlava(dir, m);
      assert.equal((await readLlavaVisionAssets(dir)).preprocessing.padToSquare, true);
    });
    assert.equal(parseImageProcessorConfig({ image_processor_type: 'LlavaImageProcessor', do_pad: true }).padToSquare, true);
    assert.throws(() => parseImageProcessorConfig({ resample: 1 }), /resample 1 \(lanczos\) is not supported/);
    assert.throws(() => parseImageProcessorConfig({ image_processor_type: 'SiglipImageProcessor' }), /image_processor_type SiglipImageProcessor is not supported/);
  });
});
