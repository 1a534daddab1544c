/** `attune eval` and `attune profile act` end to end, as child processes on small item files. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL_PROFILE_SCHEMA as ModelProfileSchema } from '../../calibrators/index.js';
import { actProfile } from '../../calibrators/act.js';
// Fails loudly when the shared test models are missing.
import '../helpers/models-dir.js';
import { attune, CLOZE_DIR } from './cli-runner.js';

const calibrationLines = readFileSync(join(CLOZE_DIR, 'calibration.jsonl'), 'utf8').trim().split('\n');
const builtinProfile = JSON.parse(readFileSync(join(CLOZE_DIR, '..', '..', 'profiles', 'stories260K.json'), 'utf8')) as { chat_template?: string };

describe('eval and profile CLIs (stories260K)', () => {
  let dir: string;
  let items: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'attune-eval-'));
    items = join(dir, 'items.jsonl');
    await writeFile(items, `${calibrationLines.slice(0, 8).join('\n')}\n`);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('attune eval prints the metric without and with the calibration, the item count and a CI', async () => {
    // Layer 0 is outside the default ACT layers: the command must widen the compiled layers.
    const r = await attune(['eval', '--data', items, '--calibration', '{"act":{"heads":{"0":[1],"3":[2,5]},"beta":0.2}}', '--bootstrap', '500', '--seed', '5']);
    assert.equal(r.code, 0, r.stderr);
    const row = r.stdout.split('\n').find((l) => l.startsWith('8 '));
    assert.ok(row, r.stdout);
    assert.match(row, /^8\s+accuracy\s+\d+\.\d\d% \(\d\/8\)\s+\d+\.\d\d% \(\d\/8\)\s+[+−±]\d+\.\d\d pts$/);
    assert.match(r.stdout, /95% CI\s+\[.+\]\s+\[.+\]\s+\[.+ pts, .+ pts\]/);
    assert.match(r.stdout, /500 resamples, seed 5/);

    const json = await attune(['eval', '--data', items, '--calibration', '{"act":{"heads":{"0":[1],"3":[2,5]},"beta":0.2}}', '--bootstrap', '500', '--seed', '5', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { items: number; before: { mean: number }; after: { mean: number }; difference: { diff: number; low: number; high: number } };
    assert.equal(parsed.items, 8);
    assert.ok(Math.abs(parsed.after.mean - parsed.before.mean - parsed.difference.diff) < 1e-12);
    assert.ok(parsed.difference.low <= parsed.difference.diff && parsed.difference.diff <= parsed.difference.high);
    assert.match(r.stdout, new RegExp(`${(100 * parsed.before.mean).toFixed(2)}%.*${(100 * parsed.after.mean).toFixed(2)}%`));
  });

  it('attune eval exits non-zero with a clear message on bad input', async () => {
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, `${calibrationLines[0]}\n{"prompt": "x", "choices": [" a", " b"], "answer": 5}\n`);
    const cases: [string[], RegExp][] = [
      [['--data', items, '--calibration', '{act:'], /--calibration is not valid JSON/],
      [['--data', items, '--calibration', '{"nope":true}'], /calibration\.nope: unknown calibrator 'nope'; available: act/],
      [['--data', items, '--calibration', '{"act":{"beta":3}}'], /calibration\.act\.beta: /],
      [['--data', items, '--calibration', '{"act":{"heads":{"2":[9]}}}'], /calibration\.act\.heads\.2\.0: head 9 does not exist/],
      [['--data', bad, '--calibration', '{"act":true}'], /bad\.jsonl:2: .*answer must index one of the choices/],
      [['--data', join(dir, 'missing.jsonl'), '--calibration', '{"act":true}'], /cannot read .*missing\.jsonl/],
      [['--data', items], /--calibration is required/],
      [['--data', items, '--calibration', '{}', '--bootstrap', 'many'], /--bootstrap must be an integer/],
    ];
    for (const [args, re] of cases) {
      const r = await attune(['eval', ...args]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
  });

  it('attune profile act searches 2 layers on a small set and writes a valid profile that keeps chat_template', async () => {
    const calib = join(dir, 'calib.jsonl');
    await writeFile(calib, `${calibrationLines.slice(0, 16).join('\n')}\n`);
    const out = join(dir, 'attune-profile.json');
    const r = await attune(['profile', 'act', '--data', calib, '--out', out, '--layers', '0-1', '--beta', '0.3']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.split('\n').filter((l) => /^[01]\s+\d\s/.test(l));
    assert.equal(rows.length, 16, 'one table row per head of the 2 searched layers');
    const baseline = Number(/baseline \(no calibration\): (\d+\.\d\d)% on 16 items/.exec(r.stdout)?.[1]);
    const rule = /chosen: (union|greedy|none)/.exec(r.stdout)?.[1];
    assert.ok(Number.isFinite(baseline) && rule, r.stdout);

    const written: unknown = JSON.parse(readFileSync(out, 'utf8'));
    const profile = ModelProfileSchema.parse(written);
    assert.ok(builtinProfile.chat_template);
    assert.equal(profile.chat_template, builtinProfile.chat_template);
    const section = actProfile(profile)!;
    assert.equal(section.beta, 0.3);
    assert.equal(section.threshold, 0.1);
    assert.match(section.source!, /attune profile act on calib\.jsonl \(16 items, accuracy\); searched layers 0,1, beta 0\.3/);
    for (const l of [2, 3, 4]) assert.ok(section.layers!.includes(l), 'the default layers stay compiled');
    for (const layer of Object.keys(section.heads)) assert.ok(section.layers!.includes(Number(layer)), `layer ${layer} is compiled`);

    // Whatever rule won, the written heads are kept heads, and with `union` exactly all of them.
    const kept = rows.filter((l) => /\syes$/.test(l)).map((l) => l.split(/\s+/).slice(0, 2).join(':')).sort();
    const shipped = Object.entries(section.heads).flatMap(([l, hs]) => hs.map((h) => `${l}:${h}`)).sort();
    if (rule === 'union') assert.deepEqual(shipped, kept);
    else if (rule === 'none') assert.deepEqual(shipped, []);
    else for (const h of shipped) assert.ok(kept.includes(h), `${h} was kept alone`);

    // The search's number for the written set is what `attune eval` measures for it.
    if (shipped.length) {
      const chosen = new RegExp(`${rule === 'greedy' ? 'greedy forward selection' : 'union of kept heads'}: (\\d+\\.\\d\\d)%`).exec(r.stdout)?.[1];
      assert.ok(Number(chosen) > baseline, 'a written set beats the baseline on the calibration set');
      const check = await attune(['eval', '--data', calib, '--calibration', JSON.stringify({ act: { heads: section.heads, beta: 0.3 } }), '--bootstrap', '100']);
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, new RegExp(`^16\\s+accuracy\\s+${baseline.toFixed(2)}% \\(\\d+/16\\)\\s+${chosen}%`, 'm'));
    }

    // A second run merges into the file it wrote: other fields survive, act is replaced.
    await writeFile(out, JSON.stringify({ ...(written as object), chat_template: 'custom' }));
    const again = await attune(['profile', 'act', '--data', calib, '--out', out, '--layers', '4', '--margin', '100']);
    assert.equal(again.code, 0, again.stderr);
    const merged = ModelProfileSchema.parse(JSON.parse(readFileSync(out, 'utf8')));
    assert.equal(merged.chat_template, 'custom');
    assert.deepEqual(actProfile(merged)!.heads, {}, 'no head gains more than 100 items');
    assert.equal(actProfile(merged)!.beta, 0.4);
    assert.match(again.stdout, /chosen: none/);
  });

  it('attune profile rejects bad flags', async () => {
    const cases: [string[], RegExp][] = [
      [['profile', 'nope'], /unknown profile kind 'nope'/],
      [['profile', 'act', '--data', items, '--out', join(dir, 'x.json'), '--layers', '7'], /layer 7 does not exist; the model has layers 0-4/],
      [['profile', 'act', '--data', items, '--out', join(dir, 'x.json'), '--beta', '2'], /--beta must be a number in \[0, 1\]/],
      [['profile', 'act', '--data', items], /--out is required/],
    ];
    for (const [args, re] of cases) {
      const r = await attune(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
  });
});
