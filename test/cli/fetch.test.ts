/**
 * `attune fetch`, run as the init container runs it: the built CLI in a child process, downloading
 * over loopback HTTP from a file server that plays the hub (the shared models directory).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveModel } from '../../models/resolve.js';
import { attune } from '../eval/cli-runner.js';
import { serveFiles } from '../helpers/file-server.js';
import { modelsDir, stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('attune fetch', () => {
  it('downloads a catalogue model, verified, into DEST/<name>/ where serve finds it, and reuses it', async () => {
    const hub = await serveFiles(modelsDir);
    try {
      await withTempDir(async (dest) => {
        const first = await attune(['fetch', '--model', 'stories260K', '--dest', dest, '--hub-url', hub.url]);
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stdout, /stories260K: 2 file\(s\) verified/);
        assert.equal(sha256(join(dest, 'stories260K', 'stories260K.bin')), sha256(stories260K.checkpoint));
        assert.deepEqual(readdirSync(join(dest, 'stories260K')).sort(), ['stories260K.bin', 'tok512.bin']);
        const model = await resolveModel('stories260K', { modelsDir: dest, env: {}, download: false });
        assert.equal(model.dir, join(dest, 'stories260K'));

        const requestsBefore = hub.requests.length;
        const again = await attune(['fetch', '--model', 'stories260K', '--dest', dest, '--hub-url', hub.url]);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(hub.requests.length, requestsBefore, 'files already verified are not fetched again');
      });
    } finally {
      await hub.close();
    }
  });

  it('refuses a file whose sha256 differs and leaves nothing under its final name', async () => {
    const hub = await serveFiles(modelsDir, { '/stories260K/tok512.bin': new Uint8Array([1, 2, 3]) });
    try {
      await withTempDir(async (dest) => {
        const r = await attune(['fetch', '--model', 'stories260K', '--dest', dest, '--hub-url', hub.url]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /sha256 [0-9a-f]{64}, expected 037cb335/);
        assert.equal(existsSync(join(dest, 'stories260K', 'tok512.bin')), false);
      });
    } finally {
      await hub.close();
    }
  });

  it('fetches a model described by a manifest file', async () => {
    const hub = await serveFiles(modelsDir);
    try {
      await withTempDir(async (dir) => {
        const manifest = join(dir, 'model.json');
        writeFileSync(manifest, JSON.stringify({
          name: 'tiny-stories',
          baseUrl: `${hub.url}/stories260K`,
          files: [
            { path: 'stories260K.bin', sha256: sha256(stories260K.checkpoint) },
            { path: 'tok512.bin', sha256: sha256(stories260K.tokenizer) },
          ],
        }));
        const dest = join(dir, 'models');
        const r = await attune(['fetch', '--manifest', manifest, '--dest', dest]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(sha256(join(dest, 'tiny-stories', 'tok512.bin')), sha256(stories260K.tokenizer));
      });
    } finally {
      await hub.close();
    }
  });

  it('answers a bad manifest or bad flags with exit 2 and a message naming the field', async () => {
    await withTempDir(async (dir) => {
      const manifest = join(dir, 'model.json');
      writeFileSync(manifest, JSON.stringify({ name: 'x', baseUrl: 'http://127.0.0.1:1', files: [{ path: '../etc/passwd', sha256: 'abc' }] }));
      const bad = await attune(['fetch', '--manifest', manifest, '--dest', dir]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /files\.0\.path: must not contain "\.\."/);
      assert.match(bad.stderr, /files\.0\.sha256: 64 hex digits/);

      const both = await attune(['fetch', '--model', 'stories260K', '--manifest', manifest, '--dest', dir]);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /exactly one of --model and --manifest/);
      const unknown = await attune(['fetch', '--model', 'nope', '--dest', dir]);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /not in the catalogue/);
    });
  });
});
