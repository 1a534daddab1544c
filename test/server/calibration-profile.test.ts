/**
 * ACT on a model without a profile (aidreams260K ships none): the default head set cannot be
 * resolved, so the request gets a 400 that names the field and says how to make a profile, while
 * explicit heads still work.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertErrorShape, postJson } from '../helpers/http.js';
import type { Completion } from '../helpers/openai-types.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

describe('ACT without a model profile', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({}, { model: 'aidreams260K' });
  });
  after(() => s.close());

  it('answers "heads": "profile" with a 400 that says how to make one', async () => {
    for (const calibration of [{ act: true }, { act: { heads: 'profile' } }]) {
      const r = await postJson(`${s.url}/v1/completions`, { prompt: 'The machine', max_tokens: 4, calibration });
      assert.equal(r.status, 400);
      const e = assertErrorShape(r.body);
      assert.equal(e.param, 'calibration.act.heads');
      assert.match(e.message, /no ACT head profile.*attune profile act/);
    }
  });

  it('still calibrates explicit heads', async () => {
    const r = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'The machine', max_tokens: 4, temperature: 0, calibration: { act: { heads: { 2: [0, 3] } } } });
    assert.equal(r.status, 200);
    assert.equal((r.body.calibration!.act as { heads_calibrated: number }).heads_calibrated, 2);
  });
});
