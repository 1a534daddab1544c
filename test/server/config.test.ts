/** Server configuration: defaults, the precedence of flags over env over file, keys, and clear failures. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { serveHelp } from '../../src/config/help.js';
import { ConfigError, loadServerConfig, type LoadedConfig } from '../../src/config/load-config.js';
import { OPTIONS } from '../../src/config/options.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { withTempDir } from '../helpers/temp-dir.js';

function load(argv: string[], env: Record<string, string> = {}): ServerConfig {
  const r: LoadedConfig = loadServerConfig({ argv, env });
  assert.equal(r.help, false);
  return (r as { config: ServerConfig }).config;
}

describe('server configuration', () => {
  it('has the documented defaults', () => {
    const c = load([]);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8000);
    assert.equal(c.model, 'stories260K');
    assert.deepEqual(c.apiKeys, []);
    assert.equal(c.logPrompts, false);
    assert.equal(c.metricsPublic, false);
    assert.equal(c.engine.maxBatch, 16);
    assert.equal(c.limits.maxLogprobs, 20);
  });

  it('takes flags over env vars over the JSON file', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'attune.json');
      await writeFile(file, JSON.stringify({ port: 1000, host: '0.0.0.0', queue: { maxQueuedRequests: 3, maxQueuedTokens: 99 }, limits: { maxN: 2 } }));
      const c = load(['--config', file, '--port', '3000', '--max-queued-tokens', '7'], { PORT: '2000', ATTUNE_MAX_QUEUED_REQUESTS: '4', ATTUNE_MAX_N: '5' });
      assert.equal(c.port, 3000);
      assert.equal(c.host, '0.0.0.0');
      assert.equal(c.queue.maxQueuedRequests, 4);
      assert.equal(c.queue.maxQueuedTokens, 7);
      assert.equal(c.limits.maxN, 5);
      const viaEnv = load([], { ATTUNE_CONFIG: file });
      assert.equal(viaEnv.port, 1000);
    });
  });

  it('reads booleans, lists and negative flags', () => {
    const c = load(['--metrics-public', '--cors-origin', 'https://a.example', '--cors-origin', 'https://b.example', '--no-plain-fast-path', '--provider', 'cuda'], {
      ATTUNE_LOG_PROMPTS: 'yes',
    });
    assert.equal(c.metricsPublic, true);
    assert.equal(c.logPrompts, true);
    assert.deepEqual(c.corsOrigins, ['https://a.example', 'https://b.example']);
    assert.equal(c.engine.plainFastPath, false);
    assert.deepEqual(c.engine.providers, ['cuda']);
    assert.deepEqual(load([], { ATTUNE_CORS_ORIGINS: 'https://a.example, *' }).corsOrigins, ['https://a.example', '*']);
  });

  it('collects API keys from flags, the env and a key file', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'keys');
      await writeFile(file, '# team keys\nkey-e\n\n  key-f  \n');
      const c = load(['--api-key', 'key-a', '--api-key', 'key-b', '--api-key-file', file], { ATTUNE_API_KEYS: 'key-c, key-d' });
      assert.deepEqual([...c.apiKeys].sort(), ['key-a', 'key-b', 'key-c', 'key-d', 'key-e', 'key-f']);
      const empty = join(dir, 'empty');
      await writeFile(empty, '# nothing\n');
      assert.throws(() => load(['--api-key-file', empty]), (e: unknown) => e instanceof ConfigError && /holds no keys/.test(e.message));
      assert.throws(() => load(['--api-key-file', join(dir, 'missing')]), (e: unknown) => e instanceof ConfigError && /ENOENT/.test(e.message));
    });
  });

  it('fails with a message naming the setting and its source', async () => {
    const fails = (argv: string[], env: Record<string, string>, pattern: RegExp) =>
      assert.throws(() => load(argv, env), (e: unknown) => e instanceof ConfigError && pattern.test(e.message), pattern.source);
    fails(['--max-batch', '0'], {}, /engine\.maxBatch \(from --max-batch\)/);
    fails([], { PORT: '70000' }, /port \(from PORT\)/);
    fails(['--port', 'eighty'], {}, /port \(from --port\): expected an integer/);
    fails([], { ATTUNE_METRICS_PUBLIC: 'maybe' }, /metricsPublic \(from ATTUNE_METRICS_PUBLIC\)/);
    fails(['--log-level', 'loud'], {}, /logLevel/);
    fails(['--max-logprobs', '21'], {}, /limits\.maxLogprobs/);
    fails(['--frobnicate'], {}, /Unknown option '--frobnicate'/);
    await withTempDir(async (dir) => {
      const file = join(dir, 'bad.json');
      await writeFile(file, JSON.stringify({ queue: { maxQueuedRequest: 3 } }));
      fails(['--config', file], {}, /queue.*Unrecognized key.*maxQueuedRequest/s);
      await writeFile(file, '{ not json');
      fails(['--config', file], {}, /config file .*bad\.json/);
    });
  });

  it('documents every flag and env var in --help', () => {
    assert.deepEqual(loadServerConfig({ argv: ['--help'], env: {} }), { help: true });
    const help = serveHelp();
    for (const o of OPTIONS) {
      assert.ok(help.includes(`--${o.flag}`), o.flag);
      assert.ok(help.includes(o.env), o.env);
    }
    assert.match(help, /--config FILE/);
  });
});
