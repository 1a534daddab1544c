/** llama2.c checkpoints read tensor by tensor, and written the same way. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { copyFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openLlama2cCheckpoint, parseLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import { writeLlama2cCheckpoint } from '../../models/checkpoint/llama2c-writer.js';
import { inMemoryCheckpoint, readDecoderWeights } from '../../models/checkpoint/decoder-checkpoint.js';
import { stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

const whole = parseLlama2cCheckpoint(readFileSync(stories260K.checkpoint));

describe('llama2.c checkpoints, streamed', () => {
  it('positioned reads give exactly the tensors of the whole-file parse', async () => {
    const ckpt = await openLlama2cCheckpoint(stories260K.checkpoint);
    try {
      assert.deepEqual(ckpt.config, whole.config);
      assert.equal(ckpt.tiedClassifier, true);
      assert.deepEqual(ckpt.files, [stories260K.checkpoint]);
      assert.deepEqual(await readDecoderWeights(ckpt), whole);
    } finally {
      await ckpt.close();
    }
  });

  it('a truncated file is refused when opened, naming both sizes', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'cut.bin');
      await copyFile(stories260K.checkpoint, path);
      await truncate(path, 500_000);
      await assert.rejects(openLlama2cCheckpoint(path), /truncated \(500000 bytes, the header needs 1056540\)/);
    });
  });

  it('the writer round-trips a model, tied and untied, and leaves unwritten tensors zero', async () => {
    await withTempDir(async (dir) => {
      const src = inMemoryCheckpoint(whole);
      for (const shared of [true, false]) {
        const path = join(dir, `m-${shared}.bin`);
        const shape = { ...whole.config };
        await writeLlama2cCheckpoint(path, shape, shared, (ref) =>
          ref.tensor === 'finalNorm' ? null : ['layer' in ref ? whole.layers[ref.layer]![ref.tensor]! : whole[ref.tensor]]);
        const back = await openLlama2cCheckpoint(path);
        try {
          assert.equal(back.tiedClassifier, shared);
          const w = await readDecoderWeights(back);
          assert.deepEqual(w.layers, whole.layers);
          assert.deepEqual(w.tokenEmbedding, whole.tokenEmbedding);
          assert.deepEqual(w.lmHead, await src.read({ tensor: 'lmHead' }));
          assert.ok(w.finalNorm.every((v) => v === 0));
        } finally {
          await back.close();
        }
      }
    });
  });
});
