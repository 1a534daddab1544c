/** Model profiles: where they are found, in which order, and how bad ones are reported. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withTempDir } from '../helpers/temp-dir.js';
import { PROFILE_FILE_NAME } from '../../models/profiles/profile.js';
import { loadModelProfile as loadProfile } from '../../calibrators/index.js';
import { actProfile } from '../../calibrators/act.js';

const profile = (heads: Record<string, number[]>) => JSON.stringify({ act: { heads } });

describe('model profiles', () => {
  it('ships one for stories260K, with ACT heads and a chat template', () => {
    const p = loadProfile('stories260K', null);
    assert.ok(p.chat_template);
    assert.ok(Object.keys(actProfile(p)?.heads ?? {}).length > 0);
  });

  it('prefers attune-profile.json next to the weights, then a profiles/ directory beside them, then the built-in one', () =>
    withTempDir(async (dir) => {
      assert.deepEqual(loadProfile('nobody', dir), {});
      mkdirSync(join(dir, 'profiles'));
      writeFileSync(join(dir, 'profiles', 'stories260K.json'), profile({ 3: [1] }));
      assert.deepEqual(actProfile(loadProfile('stories260K', dir))?.heads, { 3: [1] });
      writeFileSync(join(dir, PROFILE_FILE_NAME), profile({ 2: [0] }));
      assert.deepEqual(actProfile(loadProfile('stories260K', dir))?.heads, { 2: [0] });
    }));

  it('names the file and the field of a bad profile', () =>
    withTempDir(async (dir) => {
      writeFileSync(join(dir, PROFILE_FILE_NAME), JSON.stringify({ act: { heads: { '02': [1] } } }));
      assert.throws(() => loadProfile('m', dir), /attune-profile\.json: act\.heads.*leading zeros/);
      writeFileSync(join(dir, PROFILE_FILE_NAME), '{nope');
      assert.throws(() => loadProfile('m', dir), /attune-profile\.json: not JSON/);
    }));
});
