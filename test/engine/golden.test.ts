/**
 * stories260K's documented greedy output from BOS, token for token over 256 steps, through the
 * engine worker and through the CLI. The fixture is llama2.c run.c's own output (test/fixtures).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { modelsDir, repoRoot, STORIES_GOLDEN_PREFIX } from '../helpers/models-dir.js';
import { EngineClient } from '../../src/engine/engine-client.js';
import { resolveModel } from '../../models/resolve.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';

const fixtureIds = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/stories260K-greedy-256.json'), 'utf8')) as number[];
const fixtureText = readFileSync(join(repoRoot, 'test/fixtures/stories260K-greedy-256.txt'), 'utf8');

describe('golden greedy output of stories260K', () => {
  let client: EngineClient;
  before(async () => {
    client = await EngineClient.start({ model: await resolveModel('stories260K', { modelsDir, download: false }) });
  });
  after(() => client.close());

  it('the fixture starts with the documented text', () => {
    assert.ok(fixtureText.startsWith(STORIES_GOLDEN_PREFIX));
    assert.equal(fixtureIds.length, 256);
  });

  it('reproduces run.c token for token over 256 steps through the engine worker', async () => {
    const ids: number[] = [];
    let text = '';
    let finish = null;
    // run.c: 256 forwards from BOS at position 0, one token each (the context is 512, so no limit bites).
    for await (const e of client.generate({ id: 'golden', promptIds: [1], sampling: { ...GREEDY_DEFAULTS, maxTokens: 256 }, calibration: {} })) {
      if (e.type === 'tokens') {
        ids.push(...e.tokenIds);
        text += e.text;
      } else if (e.type === 'finish') finish = e;
      else assert.fail(`engine error: ${JSON.stringify(e)}`);
    }
    assert.deepEqual(ids, fixtureIds);
    assert.equal(text + '\n', fixtureText);
    assert.equal(finish!.reason, 'length');
    assert.equal(finish!.completionTokens, 256);
  });

  it('reproduces it through the CLI', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'generate', '--model', 'stories260K', '--max-tokens', '256'], {
      env: { ...process.env, ATTUNE_MODELS_DIR: modelsDir },
    });
    assert.equal(stdout, fixtureText);
  });
});
