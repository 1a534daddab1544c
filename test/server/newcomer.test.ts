/**
 * What a new user meets before the first request: npm commands without warnings, a lock file whose
 * packages all run on the Node versions `engines` promises, the CLI runnable the documented way
 * (`npx attune …`, `npm exec -- attune …`) from the built tree, a clear message when the model
 * cannot be found or the port is taken, and complete --help texts.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import semver from 'semver';
import { resolveModel } from '../../models/resolve.js';
import { attune, CLOZE_DIR } from '../eval/cli-runner.js';
import { closedPort } from '../helpers/file-server.js';
import { modelsDir, repoRoot } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: repoRoot, env, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('newcomer friction', () => {
  it('npm reads the project configuration without warnings', async () => {
    const r = await run('npm', ['config', 'get', 'ignore-scripts']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warn/i, 'npm warned about the project configuration');
    // Dependency install scripts stay off: onnxruntime-node's would download CUDA binaries.
    assert.equal(r.stdout.trim(), 'true');
  });

  it('locks only packages that run on every Node version package.json accepts', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } };
    const lowest = semver.minVersion(pkg.engines.node)!.version;
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> };
    const needNewer = Object.entries(lock.packages)
      .filter(([, p]) => !Array.isArray(p.engines) && p.engines?.node && !semver.satisfies(lowest, p.engines.node))
      .map(([name, p]) => `${name}@${p.version} needs node ${(p.engines as { node: string }).node}`);
    assert.deepEqual(needNewer, [], `package.json says node ${pkg.engines.node}`);
  });

  it('builds an executable CLI, so `npx attune` and `npm exec -- attune` work after every build', async () => {
    const main = join(repoRoot, 'dist/src/cli/main.js');
    accessSync(main, constants.X_OK);
    const direct = await run(main, ['--help']);
    assert.equal(direct.code, 0, direct.stderr);
    assert.match(direct.stdout, /usage: attune <command>/);
    for (const [file, args] of [['npx', ['--offline', 'attune', '--help']], ['npm', ['exec', '--offline', '--', 'attune', 'generate', '--help']]] as const) {
      const r = await run(file, [...args]);
      assert.equal(r.code, 0, `${file} ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /usage: attune/);
    }
  });

  it('lists every flag of attune generate in its usage line and help', async () => {
    const r = await run(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'generate', '--help']);
    assert.equal(r.code, 0);
    const usage = r.stdout.split('\n\n')[0]!;
    for (const flag of ['--model', '--prompt', '--max-tokens', '--temperature', '--top-p', '--seed']) {
      assert.ok(usage.includes(flag), `usage line lacks ${flag}`);
      assert.ok(r.stdout.split('\n\n')[1]!.includes(flag), `help lacks ${flag}`);
    }
  });

  it('says where it looked for a model and leaves no empty cache folder after a failed download', async () => {
    const port = await closedPort();
    await withTempDir(async (dir) => {
      const cache = join(dir, 'cache', 'models');
      const wrong = join(dir, 'no-such-models-dir');
      await assert.rejects(
        resolveModel('stories260K', { env: { ATTUNE_MODELS_DIR: wrong, ATTUNE_CACHE_DIR: cache, ATTUNE_HUB_URL: `http://127.0.0.1:${port}` } }),
        (e: Error) => {
          assert.ok(e.message.includes(join(wrong, 'stories260K')), e.message);
          assert.match(e.message, /the models directory .*no-such-models-dir does not exist/);
          assert.ok(e.message.includes(join(cache, 'stories260K')), e.message);
          return true;
        },
      );
      assert.equal(existsSync(join(dir, 'cache')), false, 'the failed download left a cache folder behind');
    });
  });

  it('attune profile act searches the layers ACT is compiled into by default, not 0 and 1', async () => {
    const lines = readFileSync(join(CLOZE_DIR, 'calibration.jsonl'), 'utf8').split('\n').filter(Boolean).slice(0, 8);
    await withTempDir(async (dir) => {
      const calib = join(dir, 'calib.jsonl');
      await writeFile(calib, `${lines.join('\n')}\n`);
      const r = await attune(['profile', 'act', '--data', calib, '--out', join(dir, 'profile.json')]);
      assert.equal(r.code, 0, r.stderr);
      const searched = new Set(r.stdout.split('\n').filter((l) => /^\d\s+\d\s/.test(l)).map((l) => Number(l.split(/\s+/)[0])));
      assert.deepEqual([...searched].sort(), [2, 3, 4], 'stories260K ships ACT in layers 2..4');
      const written = JSON.parse(readFileSync(join(dir, 'profile.json'), 'utf8')) as { act: { source: string } };
      assert.match(written.act.source, /searched layers 2,3,4/);
    });
  });

  it('reports a busy port plainly, without an engine-failure line, and exits 1', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const child = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'serve', '--port', String(port)], {
        cwd: repoRoot,
        env: { ...process.env, ATTUNE_MODELS_DIR: modelsDir },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 1, out);
      assert.match(out, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use`));
      assert.doesNotMatch(out, /engine worker down/);
    } finally {
      blocker.close();
    }
  });
});
