/**
 * `attune profile var` and `attune eval` with image items, end to end as child processes on
 * tiny-llava: the profile command finds the fixture's planted sink dim (40) and τ 4 from its images
 * and merges them into a profile VAR then reads; eval scores image items with and without VAR; bad
 * input exits non-zero with a message naming what is wrong.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL_PROFILE_SCHEMA } from '../../calibrators/index.js';
import { varCalibrator } from '../../calibrators/var.js';
import { modelsDir, repoRoot } from '../helpers/models-dir.js';
import { attune, CLOZE_DIR } from './cli-runner.js';

const IMAGES = join(modelsDir, 'tiny-llava', 'images');
const TASK = join(repoRoot, 'models', 'eval', 'tiny-llava-images');

describe('attune profile var and image eval (tiny-llava)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'attune-var-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('profile var finds sink dim 40 and τ 4 on the fixture images, prints the statistics, and merges them into a profile', async () => {
    const out = join(dir, 'profile.json');
    await writeFile(out, JSON.stringify({ chat_template: 'custom', act: { heads: { 2: [1] } } }));
    const r = await attune(['profile', 'var', '--model', 'tiny-llava', '--images', IMAGES, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const first = r.stdout.split('\n').find((l) => /^\d+\s/.test(l))!;
    assert.match(first, /^40\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d\s+yes$/, r.stdout);
    assert.match(r.stdout, /sink dims: \[40\]/);
    assert.match(r.stdout, /suggested τ: 4 \(the largest gap in φ above its median: 2\.\d\d → [45]\.\d\d\)/);
    assert.match(r.stdout, /sinks per prompt at τ 4: layer 2: \d\.\d\d visual, 0\.00 other/);
    const written = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    MODEL_PROFILE_SCHEMA.parse(written);
    assert.equal(written.chat_template, 'custom');
    assert.deepEqual(written.act, { heads: { 2: [1] } }, 'other sections are kept');
    const section = written.var as { sink_dims: number[]; tau: number; source: string };
    assert.deepEqual([section.sink_dims, section.tau], [[40], 4]);
    assert.match(section.source, /attune profile var on 5 image\(s\)/);
    // VAR reads what was written.
    const cfg = varCalibrator.resolve(true, {
      name: 'tiny-llava', profile: written, config: { dim: 64, nLayers: 5 } as never,
      vision: { layers: 3, heads: 4, patches: 16, hasCls: true, featureBlock: 1, tokensPerImage: 16, tokensArePatches: true, imageTokenId: 0 },
    });
    assert.deepEqual([cfg.sinkDims, cfg.tau], [[40], 4]);
  });

  it('profile var without --out prints the section; --tau replaces the suggestion', async () => {
    const r = await attune(['profile', 'var', '--model', 'tiny-llava', '--images', IMAGES, '--tau', '3.5', '--layer', '3']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /at the input of layer 3/);
    assert.match(r.stdout, /sinks per prompt at τ 3\.5:/);
    const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { var: { sink_dims: number[]; tau: number } };
    assert.deepEqual([json.var.sink_dims, json.var.tau], [[40], 3.5]);
  });

  it('profile var on images without visual sinks finds no dim and writes nothing', async () => {
    const gray = join(dir, 'gray');
    await mkdir(gray);
    await copyFile(join(IMAGES, 'gray_noise.png'), join(gray, 'gray_noise.png'));
    const out = join(dir, 'not-written.json');
    const r = await attune(['profile', 'var', '--model', 'tiny-llava', '--images', gray, '--out', out]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /no dimension stands out on visual tokens/);
    assert.match(r.stdout, /nothing written/);
  });

  it('profile var refuses bad input', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const cases: [string[], RegExp][] = [
      [['--images', IMAGES], /--model is required/],
      [['--model', 'tiny-llava'], /--images is required/],
      [['--model', 'tiny-llava', '--images', empty], /holds no PNG, JPEG or WebP files/],
      [['--model', 'tiny-llava', '--images', join(dir, 'nope')], /cannot read/],
      [['--model', 'tiny-llava', '--images', IMAGES, '--layer', '9'], /--layer: the model has layers 0-4/],
      [['--model', 'tiny-llava', '--images', IMAGES, '--tau', '0'], /--tau must be a number > 0/],
      [['--model', 'stories260K', '--images', IMAGES], /has no vision tower/],
    ];
    for (const [args, re] of cases) {
      const r = await attune(['profile', 'var', ...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
  });

  it('eval scores image items without and with VAR (paired CI), from the shipped task', async () => {
    const items = join(dir, 'items.jsonl');
    const lines = readFileSync(join(TASK, 'items.jsonl'), 'utf8').trim().split('\n');
    // Paths are relative to the item file: point them at the shipped images.
    await writeFile(items, `${[lines[0], lines[25], lines[50], lines[51]].map((l) => l!.replace('"images/', `"${TASK}/images/`)).join('\n')}\n`);
    const r = await attune(['eval', '--model', 'tiny-llava', '--data', items, '--calibration', '{"var":{"recycle_fraction":0.8}}', '--bootstrap', '200', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const parsed = JSON.parse(r.stdout) as { items: number; before: { mean: number }; after: { mean: number }; difference: { diff: number } };
    assert.equal(parsed.items, 4);
    assert.ok(Math.abs(parsed.after.mean - parsed.before.mean - parsed.difference.diff) < 1e-12);
  });

  it('eval refuses VAR on text items, image items on a text-only model, and a missing image, naming it', async () => {
    const missing = join(dir, 'missing.jsonl');
    await writeFile(missing, '{"image":"nowhere.png","prompt":"Is it bright?","choices":[" yes"," no"],"answer":0}\n');
    const dataUrl = join(dir, 'data-url.jsonl');
    await writeFile(dataUrl, `{"image":"data:image/png;base64,AAAA","prompt":"Is it bright?","choices":[" yes"," no"],"answer":0}\n`);
    const cases: [string[], RegExp][] = [
      [['--model', 'tiny-llava', '--data', join(CLOZE_DIR, 'heldout.jsonl'), '--calibration', '{"var":true}'], /calibration\.var: VAR needs an image/],
      [['--model', 'stories260K', '--data', join(TASK, 'items.jsonl'), '--calibration', '{}'], /has no vision tower/],
      [['--model', 'tiny-llava', '--data', missing, '--calibration', '{"var":true}'], /item 1: image: cannot read .*nowhere\.png/],
      [['--model', 'tiny-llava', '--data', dataUrl, '--calibration', '{"var":true}'], /item 1: image/],
    ];
    for (const [args, re] of cases) {
      const r = await attune(['eval', ...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
  });
});
