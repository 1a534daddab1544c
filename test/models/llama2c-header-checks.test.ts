/** A llama2.c header whose heads do not fit is refused when the file is opened, naming the fields. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { llama2cLayout, openLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import { withTempDir } from '../helpers/temp-dir.js';

const cases: [string, [number, number, number, number, number, number, number], RegExp][] = [
  ['an odd head size (RoPE rotates pairs)', [6, 8, 1, 2, 2, 16, 8], /head/],
  ['n_heads not a multiple of n_kv_heads', [64, 32, 1, 4, 3, 16, 8], /n_kv_heads/],
  ['more KV heads than heads', [64, 32, 1, 4, 8, 16, 8], /n_kv_heads/],
];
for (const [what, header, message] of cases) {
  it(`llama2.c: ${what} is refused at open, before a store is built from it`, () =>
    withTempDir(async (dir) => {
      const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, maxSeqLen] = header;
      const { expectedBytes } = llama2cLayout({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, maxSeqLen }, true);
      const bytes = new Uint8Array(Math.ceil(expectedBytes) + 8);
      new Int32Array(bytes.buffer, 0, 7).set(header);
      const path = join(dir, 'model.bin');
      await writeFile(path, bytes);
      await assert.rejects(openLlama2cCheckpoint(path), message);
    }));
}
