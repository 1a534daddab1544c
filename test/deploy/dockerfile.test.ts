/**
 * The Dockerfile cannot be built here (no container engine), so what can be checked without one is
 * checked: the base is pinned by digest, the labels are there, and the runtime image holds only
 * what runs. For the last, the server's real import graph is walked from the built CLI entry point
 * (static, dynamic and worker imports): every module it reaches must come from a folder the build
 * stage copies and compiles, and every package it imports must be a production dependency, since
 * the image prunes the dev ones.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { argDefault, buildStage, keyValues, runtimeStage, stages } from '../helpers/dockerfile.js';
import { repoRoot } from '../helpers/models-dir.js';

/** Relative modules reached from `entry`, and the bare specifiers they import. */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [entry];
  const patterns = [
    /\bfrom\s+['"]([^'"]+)['"]/g,
    /\bimport\s+['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
    /new URL\(\s*['"](\.[^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  while (pending.length) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    // A folder URL (the compile cache hashes every module of a folder) is checked for being built, not read.
    if (statSync(file).isDirectory()) continue;
    const text = readFileSync(file, 'utf8');
    for (const re of patterns) {
      for (const m of text.matchAll(re)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) {
          const target = resolve(dirname(file), spec);
          assert.ok(existsSync(target), `${relative(repoRoot, file)} imports ${spec}, which is not built`);
          pending.push(target);
        } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
          packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
        }
      }
    }
  }
  return { files, packages };
}

describe('Dockerfile', () => {
  it('pins both stages to one base image by digest, and labels it with that digest', () => {
    const image = argDefault('NODE_IMAGE');
    assert.ok(image, 'ARG NODE_IMAGE has a default');
    const digest = /^node:[\w.-]+@(sha256:[0-9a-f]{64})$/.exec(image)?.[1];
    assert.ok(digest, `the base ${image} is pinned by a sha256 digest`);
    for (const stage of stages) assert.match(stage[0]!.args, /^\$\{NODE_IMAGE\}( AS \w+)?$/);
    assert.equal(keyValues(runtimeStage, 'LABEL').get('org.opencontainers.image.base.digest'), digest);
  });

  it('carries the OCI labels', () => {
    const have = keyValues(runtimeStage, 'LABEL');
    for (const key of ['title', 'description', 'version', 'revision', 'created', 'licenses', 'base.name', 'base.digest']) {
      assert.ok(have.get(`org.opencontainers.image.${key}`), `label org.opencontainers.image.${key}`);
    }
  });

  it('compiles only runtime folders, and the server never imports anything else', () => {
    const copied = buildStage.filter((i) => i.op === 'COPY').flatMap((i) => i.args.split(' ').slice(0, -1));
    for (const forbidden of ['test', 'load-tests', '.']) assert.ok(!copied.includes(forbidden), `the build stage copies ${forbidden}`);
    assert.ok(buildStage.some((i) => i.op === 'RUN' && /npm run build:runtime/.test(i.args) && /npm prune --omit=dev/.test(i.args)));

    const buildConfig = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    const compiled = new Set(buildConfig.include.map((g) => g.split('/')[0]!));
    for (const dir of compiled) assert.ok(copied.includes(dir), `tsconfig.build.json compiles ${dir}/, which the build stage copies`);
    assert.ok(!compiled.has('test') && !compiled.has('load-tests'));

    const { files, packages } = importGraph(join(repoRoot, 'dist', 'src', 'cli', 'main.js'));
    assert.ok(files.size > 50, `walked the server's modules (${files.size})`);
    assert.ok([...files].some((f) => f.endsWith(join('engine', 'worker.js'))), 'the engine worker is reached');
    for (const file of files) {
      const top = relative(join(repoRoot, 'dist'), file).split(/[\\/]/)[0]!;
      assert.ok(compiled.has(top), `${relative(repoRoot, file)} is reached from the CLI but lies outside the runtime build`);
    }
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const name of packages) assert.ok(name in pkg.dependencies, `the server imports ${name}, which is not a production dependency`);
  });
});
