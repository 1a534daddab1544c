/**
 * What keys the weight store and compiled-graph cache: an input the served weights depend on but the
 * key misses lets a later start reuse a stale store (review of the weights and compile-cache path).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stories260K } from '../helpers/models-dir.js';
import { loadLlama2cFixture, type FixtureModel } from '../helpers/load-fixture-model.js';
import { InProcessEngine, maxAbsDiff, request } from '../helpers/engine-harness.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { writeRandomHfCheckpoint } from '../helpers/random-hf-checkpoint.js';
import { openHfCheckpoint } from '../../models/checkpoint/hf-decoder.js';
import { buildStoredEngineModel } from '../../src/engine/load-engine-model.js';

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
