/**
 * What keys the weight store and compiled-graph cache: an input the served weights depend on but the
 * key misses lets a later start reuse a stale store (review of the weights and compile-cache path).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, maxAbsDiff, request } from '../helpers/engine-harness.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { writeRandomHfCheckpoint } from '../helpers/random-hf-checkpoint.js';
import { openHfCheckpoint } from '../../models/checkpoint/hf-decoder.js';
import { buildStoredEngineModel } from '../../src/engine/load-engine-model.js';
import { cachedGraph, contentHash, openWeightStore } from '../../src/engine/graph-cache.js';
import { openLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import { decoderServedFromCheckpoint } from '../../models/compiler/decoder-served-weights.js';

describe('weight store key', () => {
  let stories: FixtureModel;
  before(async () => {
    stories = await loadLlama2cFixture(stories260K);
  });

  /** The prompt's logits from the HF checkpoint in `dir`, built over the cache `cacheDir`. */
  async function promptLogits(dir: string, cacheDir: string): Promise<{ logits: Float32Array[]; hit: boolean }> {
    const checkpoint = await openHfCheckpoint(dir);
    try {
      const { model, times } = await buildStoredEngineModel({
        name: 'keyed', checkpoint, tokenizer: stories.tokenizer, profile: {}, calibrators: [], cacheDir,
        options: { threads: 1, providers: [], plainFastPath: true, weights: 'f32' },
      });
      const prompt = stories.tokenizer.encode('Once upon a time there was a tiny model', { addBos: true });
      const r = await new InProcessEngine(model, {}, true).run(request('k', prompt, { maxTokens: 1, promptLogprobs: 0, ignoreEos: true }));
      assert.equal(r.error, null);
      await model.graphs.release();
      return { logits: prompt.map((_, pos) => r.logits.get(pos)!), hit: times.hit };
    } finally {
      await checkpoint.close();
    }
  }

  it('a config.json edit that changes how q/k rows are served (head count, same shapes) does not reuse the old store', () =>
    withTempDir(async (dir) => {
      // 6 heads of 8 with 2 KV heads, then 3 heads of 16 with 1 KV head: every tensor keeps its shape,
      // but the rotate_half → interleaved row order of q and k is per head, so the served q/k differ.
      await writeRandomHfCheckpoint(dir, { arch: 'llama', dtype: 'F32', tied: true, heads: 6, kvHeads: 2, seed: 21 });
      const cache = join(dir, 'cache');
      await promptLogits(dir, cache);
      const configPath = join(dir, 'config.json');
      const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
      await writeFile(configPath, JSON.stringify({ ...config, num_attention_heads: 3, num_key_value_heads: 1 }));

      const reused = await promptLogits(dir, cache);
      const fresh = await promptLogits(dir, join(dir, 'fresh-cache'));
      assert.equal(fresh.hit, false);
      const worst = Math.max(...reused.logits.map((row, pos) => maxAbsDiff(row, fresh.logits[pos]!)));
      assert.ok(worst < 1e-5, `a warm cache gives other logits than a cold one for the same files (max |Δ| ${worst}, store hit: ${reused.hit})`);
    }));

  it('a config.json edit to tie_word_embeddings does not reuse the old store', () =>
    withTempDir(async (dir) => {
      await writeRandomHfCheckpoint(dir, { arch: 'llama', dtype: 'F32', tied: false, seed: 22 });
      const cache = join(dir, 'cache');
      await promptLogits(dir, cache);
      const configPath = join(dir, 'config.json');
      const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
      await writeFile(configPath, JSON.stringify({ ...config, tie_word_embeddings: true }));

      const reused = await promptLogits(dir, cache);
      const fresh = await promptLogits(dir, join(dir, 'fresh-cache'));
      const worst = Math.max(...reused.logits.map((row, pos) => maxAbsDiff(row, fresh.logits[pos]!)));
      assert.ok(worst < 1e-5, `a warm cache gives other logits than a cold one for the same files (max |Δ| ${worst}, store hit: ${reused.hit})`);
    }));
});

/**
 * Two starts at once in one cache: two processes with the same pid (two containers sharing a cache
 * volume, each with node as PID 1) or two loads in one process. Temporary names must not collide.
 */
describe('compiled cache: two starts at once with the same pid', () => {
  it('two builds of the same graph at once both succeed', () =>
    withTempDir(async (dir) => {
      const cacheDir = join(dir, 'cache');
      const checkpoint = await openLlama2cCheckpoint(stories260K.checkpoint);
      try {
        const store = await openWeightStore({
          cacheDir, name: 'race', part: 'decoder', format: 'f32', files: checkpoint.files, describe: '',
          served: async () => ({ weights: decoderServedFromCheckpoint(checkpoint), close: async () => {} }),
        });
        // Large enough that writeFile takes several writes, as a real graph file does.
        const compile = () => ({ note: 'graph', bytes: new Uint8Array(8 << 20).fill(7) });
        const results = await Promise.allSettled([cachedGraph(store, 'same', compile), cachedGraph(store, 'same', compile)]);
        assert.deepEqual(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')), ['ok', 'ok']);
        const bytes = await readFile((results[0] as PromiseFulfilledResult<{ graph: { path: string } }>).value.graph.path);
        assert.equal(bytes.byteLength, 8 << 20);
      } finally {
        await checkpoint.close();
      }
    }));

  it('two models hashed at once into one cache both succeed', () =>
    withTempDir(async (dir) => {
      const a = join(dir, 'a.bin');
      const b = join(dir, 'b.bin');
      await writeFile(a, new Uint8Array(1 << 20).fill(1));
      await writeFile(b, new Uint8Array(1 << 20).fill(2));
      const results = await Promise.allSettled([contentHash(join(dir, 'cache'), [a]), contentHash(join(dir, 'cache'), [b])]);
      assert.deepEqual(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')), ['ok', 'ok']);
    }));
});

describe('compiled cache: a build killed midway', () => {
  it('leaves no half-written store behind once the model has started again', () =>
    withTempDir(async (dir) => {
      const cacheDir = join(dir, 'cache');
      // A start killed (SIGKILL: OOM killer, a deploy) while it writes the store.
      const child = `
        import { openWeightStore } from ${JSON.stringify(new URL('../../src/engine/graph-cache.js', import.meta.url).href)};
        import { openLlama2cCheckpoint } from ${JSON.stringify(new URL('../../models/checkpoint/llama2c.js', import.meta.url).href)};
        import { decoderServedFromCheckpoint } from ${JSON.stringify(new URL('../../models/compiler/decoder-served-weights.js', import.meta.url).href)};
        const checkpoint = await openLlama2cCheckpoint(${JSON.stringify(stories260K.checkpoint)});
        const served = decoderServedFromCheckpoint(checkpoint);
        let reads = 0;
        const dying = new Map([...served].map(([n, w]) => [n, { ...w, read: async () => { if (++reads === 5) process.kill(process.pid, 'SIGKILL'); return w.read(); } }]));
        await openWeightStore({ cacheDir: ${JSON.stringify(cacheDir)}, name: 'killed', part: 'decoder', format: 'f32', files: checkpoint.files, describe: '',
          served: async () => ({ weights: dying, close: async () => {} }) });
      `;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8' });
      assert.equal(r.signal, 'SIGKILL', r.stderr);
      assert.ok((await readdir(cacheDir)).some((n) => n.includes('.tmp-')), 'the killed build left its temporary store');

      const checkpoint = await openLlama2cCheckpoint(stories260K.checkpoint);
      try {
        await openWeightStore({
          cacheDir, name: 'killed', part: 'decoder', format: 'f32', files: checkpoint.files, describe: '',
          served: async () => ({ weights: decoderServedFromCheckpoint(checkpoint), close: async () => {} }),
        });
      } finally {
        await checkpoint.close();
      }
      assert.deepEqual((await readdir(cacheDir)).filter((n) => n.includes('.tmp-')), [], 'a restart removes what a killed build left');
    }));
});

describe('checkpoint content hash memo', () => {
  it('a checkpoint overwritten in place with same-size bytes and its old mtime (cp -p of a fine-tune) is re-hashed', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'model.bin');
      await writeFile(path, new Uint8Array(4096).fill(1));
      await utimes(path, 1_700_000_000, 1_700_000_000); // whole seconds: restorable exactly, as cp -p restores nanoseconds
      const first = await contentHash(join(dir, 'cache'), [path]);
      await writeFile(path, new Uint8Array(4096).fill(2)); // same inode, same size
      await utimes(path, 1_700_000_000, 1_700_000_000); // as cp -p, rsync --inplace -t or tar leave it
      assert.equal((await stat(path)).mtimeMs, 1_700_000_000_000);
      assert.notEqual(await contentHash(join(dir, 'cache'), [path]), first);
    }));
});
