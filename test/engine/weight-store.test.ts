/**
 * The serving path for weights: a checkpoint on disk → a weight store (external data beside the
 * graphs, page-aligned, with onnxruntime's pre-packed forms) → graphs that reference it. This is the
 * small CI version of the large-model test (test/engine/large-model.test.ts): it exercises the same
 * external-weights path on stories260K.
 */
import assert from 'node:assert/strict';
import { appendFile, copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { onnx } from '../../models/onnx/onnx-proto.js';
import { stories260K } from '../helpers/models-dir.js';
import { fixtureEngineModel, loadLlama2cFixture, storedEngineModel, type FixtureModel } from '../helpers/load-fixture-model.js';
import { assertBitIdentical, InProcessEngine, request, type RunResult } from '../helpers/engine-harness.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { buildStoredEngineModel, type LoadedEngineModel } from '../../src/engine/load-engine-model.js';
import { openLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import { openHfCheckpoint } from '../../models/checkpoint/hf-decoder.js';
import { llama2cToHf } from '../../models/checkpoint/convert.js';
import { writeSafetensors } from '../../models/checkpoint/safetensors-writer.js';
import { readStoreIndex } from '../../models/onnx/weight-store.js';

async function generate(model: LoadedEngineModel, prompt: number[]): Promise<RunResult> {
  const engine = new InProcessEngine(model, { prefillChunk: 8 }, true);
  return engine.run(request('x', prompt, { maxTokens: 30, promptLogprobs: 0, ignoreEos: true }));
}

describe('weight store: graphs with external, pre-packed weights', () => {
  let m: FixtureModel;
  let prompt: number[];
  let inline: RunResult;
  before(async () => {
    m = await loadLlama2cFixture(stories260K);
    prompt = m.tokenizer.encode('Once upon a time, there was a dog who liked to run.', { addBos: true });
    inline = await generate(await fixtureEngineModel(m), prompt);
  });

  it('gives logits bit-identical to graphs with their weights inline (f32), from a graph file without the weights', async () => {
    await withTempDir(async (cache) => {
      const { model, times } = await storedEngineModel(stories260K.checkpoint, m.tokenizer, cache);
      assert.equal(times.hit, false);
      assertBitIdentical(await generate(model, prompt), inline);

      const session = await model.graphs.sessionFor([]);
      const graphFile = session.modelPath!;
      const index = (await readStoreIndex(dirname(graphFile)))!;
      const weightFile = (await stat(join(dirname(graphFile), 'weights.bin'))).size;
      assert.ok((await stat(graphFile)).size < index.weightBytes / 10, 'the graph file holds no weights');
      // Every initializer that is a served weight points into weights.bin, page-aligned.
      const proto = onnx.ModelProto.decode(await readFile(graphFile));
      const external = proto.graph!.initializer!.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
      assert.equal(external.length, Object.values(index.weights).reduce((n, w) => n + w.arrays.length, 0));
      for (const t of external) {
        const kv = Object.fromEntries(t.externalData!.map((e) => [e.key, e.value]));
        assert.equal(kv.location, 'weights.bin');
        assert.equal(Number(kv.offset) % 4096, 0);
        assert.ok(Number(kv.offset) + Number(kv.length) <= weightFile);
      }
      // Each linear weight carries onnxruntime's pre-packed form, filed in the same file.
      for (const [name, w] of Object.entries(index.weights)) {
        if (w.kind === 'linear') assert.ok(w.arrays[0]!.prepacked.length > 0, `${name} has no pre-packed form`);
      }
      assert.ok(index.bytes > index.weightBytes);
    });
  });

  it('a second start reuses the store and the graphs without reading the checkpoint', async () => {
    await withTempDir(async (cache) => {
      await storedEngineModel(stories260K.checkpoint, m.tokenizer, cache);
      const real = await openLlama2cCheckpoint(stories260K.checkpoint);
      try {
        const checkpoint = { ...real, read: () => Promise.reject(new Error('the checkpoint was read')) };
        const { model, times } = await buildStoredEngineModel({
          name: 'fixture', checkpoint, tokenizer: m.tokenizer, profile: {}, calibrators: [], cacheDir: cache,
          options: { threads: 1, providers: [], plainFastPath: true, weights: 'f32' },
        });
        assert.equal(times.hit, true);
        assert.equal(times.prepackMs, 0);
        assertBitIdentical(await generate(model, prompt), inline);
      } finally {
        await real.close();
      }
    });
  });

  it('a changed checkpoint gets a store of its own', async () => {
    await withTempDir(async (dir) => {
      const cache = join(dir, 'cache');
      const path = join(dir, 'model.bin');
      await copyFile(stories260K.checkpoint, path);
      const first = await storedEngineModel(path, m.tokenizer, cache);
      const firstDir = dirname((await first.model.graphs.sessionFor([])).modelPath!);
      await appendFile(path, new Uint8Array(4)); // trailing bytes run.c ignores: same model, new content
      const second = await storedEngineModel(path, m.tokenizer, cache);
      assert.equal(second.times.hit, false);
      assert.notEqual(dirname((await second.model.graphs.sessionFor([])).modelPath!), firstDir);
    });
  });

  it('an HF checkpoint in two shards (BF16) goes through the same store path as the .bin it came from', async () => {
    await withTempDir(async (dir) => {
      const hf = llama2cToHf(m.weights, { dtype: 'BF16' });
      const names = Object.keys(hf.tensors);
      const shards = [names.slice(0, names.length / 2), names.slice(names.length / 2)];
      const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
      for (const [i, part] of shards.entries()) await writeSafetensors(join(dir, files[i]!), Object.fromEntries(part.map((n) => [n, hf.tensors[n]!])));
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: Object.fromEntries(shards.flatMap((part, i) => part.map((n) => [n, files[i]]))) }));
      await writeFile(join(dir, 'config.json'), JSON.stringify(hf.config));
      const checkpoint = await openHfCheckpoint(dir);
      try {
        assert.deepEqual(checkpoint.files.slice(1).sort(), files.map((f) => join(dir, f)).sort(), 'the index and both shards key the store');
        const { model } = await buildStoredEngineModel({
          name: 'sharded', checkpoint, tokenizer: m.tokenizer, profile: {}, calibrators: [], cacheDir: join(dir, 'cache'),
          options: { threads: 1, providers: [], plainFastPath: true, weights: 'f32' },
        });
        // BF16 rounding and rotate_half layout change the logits slightly, not this text.
        assert.deepEqual((await generate(model, prompt)).tokenIds.slice(0, 20), inline.tokenIds.slice(0, 20));
      } finally {
        await checkpoint.close();
      }
    });
  });
});
