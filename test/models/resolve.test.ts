import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ChecksumError, HubUnreachableError } from '../../models/hub.js';
import { resolveModel } from '../../models/resolve.js';
import { closedPort, serveFiles } from '../helpers/file-server.js';
import { modelsDir, stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const noEnv = {};

describe('model resolution', () => {
  it('finds a named model in ATTUNE_MODELS_DIR', async () => {
    const m = await resolveModel('stories260K', { env: { ATTUNE_MODELS_DIR: modelsDir, ATTUNE_CACHE_DIR: '/nonexistent' } });
    assert.deepEqual(m, {
      format: 'llama2c',
      name: 'stories260K',
      dir: join(modelsDir, 'stories260K'),
      checkpoint: stories260K.checkpoint,
      tokenizer: stories260K.tokenizer,
    });
    const llava = await resolveModel('tiny-llava', { modelsDir, env: noEnv });
    assert.deepEqual(llava, { format: 'hf', name: 'tiny-llava', dir: join(modelsDir, 'tiny-llava') });
  });

  it('accepts paths to a checkpoint file or a directory', async () => {
    const m = await resolveModel(stories260K.checkpoint, { env: noEnv });
    assert.equal(m.format, 'llama2c');
    assert.equal(m.format === 'llama2c' && m.tokenizer, stories260K.tokenizer);
    const d = await resolveModel(join(modelsDir, 'aidreams260K'), { env: noEnv });
    assert.equal(d.format === 'llama2c' && d.checkpoint, join(modelsDir, 'aidreams260K', 'aidreams260K.bin'));
    await assert.rejects(resolveModel('./no/such/model.bin', { env: noEnv }), /does not exist/);
    await assert.rejects(resolveModel('no-such-model', { env: noEnv, cacheDir: '/nonexistent' }), /model no-such-model not found/);
  });

  it('downloads the catalogue model into the cache, verifying sha256, then reuses it', async () => {
    const server = await serveFiles(modelsDir);
    try {
      await withTempDir(async (cache) => {
        const env = { ATTUNE_CACHE_DIR: cache, ATTUNE_HUB_URL: server.url };
        const m = await resolveModel('stories260K', { env });
        assert.equal(m.format, 'llama2c');
        if (m.format !== 'llama2c') return;
        assert.equal(m.checkpoint, join(cache, 'stories260K', 'stories260K.bin'));
        assert.equal(sha256(m.checkpoint), 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696');
        assert.equal(sha256(m.tokenizer), '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312');
        assert.deepEqual((await readdir(join(cache, 'stories260K'))).sort(), ['stories260K.bin', 'tok512.bin'], 'no temporary files left');
        assert.deepEqual(server.requests, ['/stories260K/stories260K.bin', '/stories260K/tok512.bin']);
        await resolveModel('stories260K', { env });
        assert.equal(server.requests.length, 2, 'a cached model is not fetched again');
      });
    } finally {
      await server.close();
    }
  });

  it('downloads only the files a partial cache lacks', async () => {
    const server = await serveFiles(modelsDir);
    try {
      await withTempDir(async (cache) => {
        await mkdir(join(cache, 'stories260K'));
        await copyFile(stories260K.tokenizer, join(cache, 'stories260K', 'tok512.bin'));
        await resolveModel('stories260K', { cacheDir: cache, hubUrl: `${server.url}/`, env: noEnv });
        assert.deepEqual(server.requests, ['/stories260K/stories260K.bin']);
      });
    } finally {
      await server.close();
    }
  });

  it('discards a download whose sha256 does not match', async () => {
    const server = await serveFiles(modelsDir, { '/stories260K/stories260K.bin': new TextEncoder().encode('not the model') });
    try {
      await withTempDir(async (cache) => {
        await assert.rejects(
          resolveModel('stories260K', { env: { ATTUNE_CACHE_DIR: cache, ATTUNE_HUB_URL: server.url } }),
          (e: unknown) => e instanceof ChecksumError && /sha256 .* expected b0a507e7/.test(e.message),
        );
        assert.equal(existsSync(join(cache, 'stories260K')), false, 'neither the bad file, nor a temporary, nor the empty folder is left');
      });
    } finally {
      await server.close();
    }
  });

  it('explains how to work offline when the hub is unreachable', async () => {
    const port = await closedPort();
    await withTempDir(async (cache) => {
      await assert.rejects(
        resolveModel('stories260K', { env: { ATTUNE_CACHE_DIR: cache, ATTUNE_HUB_URL: `http://127.0.0.1:${port}` } }),
        (e: unknown) =>
          e instanceof HubUnreachableError &&
          /set ATTUNE_MODELS_DIR to a directory containing stories260K\/stories260K\.bin and stories260K\/tok512\.bin/.test(e.message) &&
          /ECONNREFUSED/.test(e.message),
      );
      await assert.rejects(resolveModel('stories260K', { cacheDir: cache, download: false, env: noEnv }), /downloads are off/);
    });
  });

  it('reports HTTP errors and malformed directories', async () => {
    const server = await serveFiles(join(modelsDir, 'nothing-here'));
    try {
      await withTempDir(async (cache) => {
        await assert.rejects(resolveModel('stories260K', { cacheDir: cache, hubUrl: server.url, env: noEnv }), /HTTP 404/);
        const odd = join(cache, 'odd');
        await mkdir(odd);
        await writeFile(join(odd, 'a.bin'), '');
        await writeFile(join(odd, 'b.bin'), '');
        await assert.rejects(resolveModel(odd, { env: noEnv }), /several checkpoints \(a\.bin, b\.bin\)/);
        await assert.rejects(resolveModel('../x', { env: noEnv }), /does not exist/);
        await assert.rejects(resolveModel('bad name!', { env: noEnv }), /not a valid name/);
      });
    } finally {
      await server.close();
    }
  });
});
