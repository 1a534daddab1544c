/**
 * VAR over real HTTP against a real server and engine worker serving tiny-llava (its built-in
 * profile: sink dim 40, τ 4): an image chat with `"var": true` reports the sinks the float64
 * reference finds, and its numeric report fields become histograms; ACT and VAR on one request, VAR
 * without an image, and bad knobs are 400s naming the field; a text-only model refuses VAR.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { loadTinyLlava, referenceRun, tinyLlavaImage, tinyLlavaImagePath, tinyLlavaPrompt, type TinyLlava } from '../helpers/tiny-llava.js';
import { VarReference } from '../reference/var-reference.js';

const fixture = (file: string) => `data:image/png;base64,${readFileSync(tinyLlavaImagePath(file)).toString('base64')}`;
const userTurn = (text: string, ...urls: string[]) => [{ role: 'user', content: [...urls.map((url) => ({ type: 'image_url', image_url: { url } })), { type: 'text', text }] }];

interface VarReport {
  active: boolean;
  visual_sinks: number;
  rows_edited: number;
  official: { p: number; rho: number; summ: number };
  layers: Record<string, { sinks: number[]; edited_rows: number }>;
}
type Chat = { choices: { message: { content: string } }[]; calibration?: { var?: VarReport } };

describe('VAR over HTTP: tiny-llava', () => {
  let s: TestServer;
  let m: TinyLlava;
  before(async () => {
    [s, m] = await Promise.all([startTestServer({}, { model: 'tiny-llava' }), loadTinyLlava()]);
  });
  after(async () => {
    await s.close();
  });

  it('an image chat with "var": true reports the reference\'s sinks and edited rows per layer, and the official knobs', async () => {
    const r = await postJson<Chat>(`${s.url}/v1/chat/completions`, {
      messages: userTurn('What is in the picture?', fixture('one_bright_patch.png')), max_tokens: 1, temperature: 0,
      calibration: { var: true, report: 'full' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const rep = r.body.calibration!.var!;
    assert.equal(rep.active, true);
    assert.deepEqual(rep.official, { p: 0.6, rho: 0.5, summ: 0.2 });
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const ref = new VarReference({ recycle: 0.4, minNonsinkRatio: 0.5, minImageAttention: 0.2, tau: 4, sinkDims: [40], layers: [2, 3] }, prompt.images, prompt.ids.length);
    referenceRun(m, prompt, [await tinyLlavaImage(m, 'one_bright_patch.png')], [], [['*', ref.hook]]);
    for (const l of [2, 3]) {
      assert.deepEqual(rep.layers[l]!.sinks, ref.sinks.get(l), `layer ${l} sinks`);
      assert.equal(rep.layers[l]!.edited_rows, ref.editedPrefill.get(l), `layer ${l} edited rows`);
    }
    assert.ok(rep.visual_sinks > 0 && rep.rows_edited > 0);
  });

  it('the report\'s counts become histograms (attune:var_visual_sinks, attune:var_rows_edited); config echoes do not', async () => {
    const text = await scrape(s.url);
    assert.ok(metricValue(text, 'attune:var_visual_sinks_count')! >= 1);
    assert.ok(metricValue(text, 'attune:var_rows_edited_count')! >= 1);
    assert.ok(metricValue(text, 'attune:var_sinks_found_count')! >= 1);
    assert.ok(metricValue(text, 'attune:calibration_requests_total', { calibrator: 'var' })! >= 1);
    assert.equal(metricValue(text, 'attune:var_recycle_fraction_count'), undefined);
    assert.equal(metricValue(text, 'attune:var_tau_count'), undefined);
  });

  it('ACT and VAR on one request are a 400 naming calibration.var', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, {
      messages: userTurn('Hi', fixture('checker.png')), max_tokens: 1, calibration: { act: { heads: { 2: [0] } }, var: true },
    });
    assert.equal(r.status, 400);
    const e = assertErrorShape(r.body);
    assert.equal(e.param, 'calibration.var');
    assert.equal(e.code, 'calibrator_conflict');
    assert.match(e.message, /var and act cannot run on the same request/);
  });

  it('VAR without an image is a 400 naming calibration.var, on both routes', async () => {
    const chat = await postJson(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 1, calibration: { var: true } });
    assert.equal(chat.status, 400);
    const e = assertErrorShape(chat.body);
    assert.equal(e.param, 'calibration.var');
    assert.match(e.message, /needs an image/);
    const completion = await postJson(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 1, calibration: { var: {} } });
    assert.equal(completion.status, 400);
    assert.equal(assertErrorShape(completion.body).param, 'calibration.var');
  });

  it('bad knobs are 400s naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ recycle_fraction: 2 }, 'calibration.var.recycle_fraction'],
      [{ min_nonsink_ratio: -0.1 }, 'calibration.var.min_nonsink_ratio'],
      [{ tau: 0 }, 'calibration.var.tau'],
      [{ sink_dims: [40, 64] }, 'calibration.var.sink_dims.1'],
      [{ sink_dims: [1.5] }, 'calibration.var.sink_dims.0'],
      [{ include_last_layer: 'yes' }, 'calibration.var.include_last_layer'],
      [{ layers: [2] }, 'calibration.var'],
    ];
    for (const [config, param] of cases) {
      const r = await postJson(`${s.url}/v1/chat/completions`, { messages: userTurn('Hi', fixture('checker.png')), max_tokens: 1, calibration: { var: config } });
      assert.equal(r.status, 400, JSON.stringify(config));
      assert.equal(assertErrorShape(r.body).param, param, JSON.stringify(config));
    }
  });

  it('GET /v1/calibrators lists VAR with its knobs', async () => {
    const r = await getJson<{ data: { id: string; config_schema: { properties?: Record<string, unknown> } }[] }>(`${s.url}/v1/calibrators`);
    const entry = r.body.data.find((c) => c.id === 'var');
    assert.ok(entry);
    for (const key of ['recycle_fraction', 'min_nonsink_ratio', 'min_image_attention', 'tau', 'sink_dims', 'include_last_layer']) assert.ok(entry.config_schema.properties?.[key], key);
  });
});

describe('VAR over HTTP: a text-only model', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  it('refuses "var": true with a 400 that says the model has no vision tower', async () => {
    const r = await postJson(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 1, calibration: { var: true } });
    assert.equal(r.status, 400);
    const e = assertErrorShape(r.body);
    assert.equal(e.param, 'calibration.var');
    assert.match(e.message, /no vision tower/);
  });
});
