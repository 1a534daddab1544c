/**
 * The engine client's crash path at the engine level: a crashed worker comes back with backoff,
 * and keeps trying when a reload itself fails (here: the checkpoint is missing for a while).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { EngineClient } from '../../src/engine/engine-client.js';
import { resolveModel } from '../../models/resolve.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';

async function greedyIds(client: EngineClient, id: string): Promise<number[]> {
  const ids: number[] = [];
  for await (const e of client.generate({ id, promptIds: [1], sampling: { ...GREEDY_DEFAULTS, maxTokens: 12 }, calibration: {} })) {
    if (e.type === 'tokens') ids.push(...e.tokenIds);
    if (e.type === 'error') assert.fail(e.message);
  }
  return ids;
}

describe('engine restarts', () => {
  it('retries a failed reload with a growing delay until the model loads again', () =>
    withTempDir(async (dir) => {
      const modelDir = join(dir, 'stories260K');
      mkdirSync(modelDir);
      copyFileSync(stories260K.checkpoint, join(modelDir, 'stories260K.bin'));
      copyFileSync(stories260K.tokenizer, join(modelDir, 'tok512.bin'));
      const client = await EngineClient.start({ model: await resolveModel(modelDir), restart: { initialMs: 50, maxMs: 400 } });
      try {
        const before = await greedyIds(client, 'before');
        const delays: number[] = [];
        client.on('restarting', (ms) => delays.push(ms));

        // The reload after the crash fails while the checkpoint is away, and must be retried.
        renameSync(join(modelDir, 'stories260K.bin'), join(modelDir, 'away.bin'));
        client.crashWorker();
        await waitFor(() => delays.length >= 3, 'several failed reloads', 10_000);
        assert.equal(client.isReady, false);
        renameSync(join(modelDir, 'away.bin'), join(modelDir, 'stories260K.bin'));
        await waitFor(() => client.isReady, 'the engine to come back', 15_000);

        assert.ok(delays[1]! > delays[0]!, `the delay grows: ${delays.join(', ')} ms`);
        assert.deepEqual(await greedyIds(client, 'after'), before);
      } finally {
        await client.close();
      }
    }));
});
