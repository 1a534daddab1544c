/**
 * PAINT over real HTTP on tiny-llava (a real server around a real engine worker): a chat request
 * with a PNG image and guidance answers with its report (token sets equal to the float64 reference's
 * selection on the same decoded image) and its metrics; the refusals are 400s naming
 * `calibration.paint`; a streamed guided request cut off by its client gives both slots back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { postStream } from '../helpers/sse.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import { waitFor } from '../helpers/wait.js';
import { loadTinyLlava, tinyLlavaImage, tinyLlavaImagePath } from '../helpers/tiny-llava.js';
import { ReferenceVision } from '../reference/vision-reference.js';
import { referenceSelection } from '../reference/paint-reference.js';

const dataUrl = (file: string) => `data:image/png;base64,${readFileSync(tinyLlavaImagePath(file)).toString('base64')}`;
const withImage = (file: string, text: string) => [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(file) } }, { type: 'text', text }] }];

describe('PAINT over HTTP (tiny-llava)', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ engine: { maxBatch: 4 } }, { model: 'tiny-llava' });
  });
  after(async () => {
    await s.close();
  });
  const chat = (body: Record<string, unknown>) => postJson<Record<string, unknown>>(`${s.url}/v1/chat/completions`, { max_tokens: 8, temperature: 0, ...body });

  it('a guided request with an image answers with the full report: the reference\'s token sets, every step guided', async () => {
    const r = await chat({ messages: withImage('noise_two_bright.png', 'What is in the picture?'), calibration: { paint: { guidance: true, spatial_ratio: 0.25 }, report: 'full' }, ignore_eos: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const report = (r.body.calibration as Record<string, Record<string, unknown>>).paint!;
    const m = await loadTinyLlava();
    const pixels = (await tinyLlavaImage(m, 'noise_two_bright.png')).pixels;
    const expected = referenceSelection(new ReferenceVision(m.vision.weights).forward(pixels).attentions, 1, 0.25, 0.25);
    assert.deepEqual(report, {
      active: true, alpha: 0.7, beta: 0.4,
      local_tokens: expected.local.length, summary_tokens: expected.summary.length, spatial_tokens: expected.spatial.length,
      guided_steps: 8, images: [expected],
    });
    assert.equal((r.body.usage as { completion_tokens: number }).completion_tokens, 8);
    const metrics = await scrape(s.url);
    for (const field of ['local_tokens', 'summary_tokens', 'spatial_tokens', 'guided_steps']) {
      assert.ok((metricValue(metrics, `attune:paint_${field}_count`) ?? 0) >= 1, `attune:paint_${field}`);
    }
    assert.equal(metricValue(metrics, 'attune:paint_alpha_count'), undefined, 'config echoes are not observations');
  });

  it('refuses PAINT without an image, bad values and conflicting shapes with 400s naming the field', async () => {
    const noImage = await chat({ messages: [{ role: 'user', content: 'Tell me a story.' }], calibration: { paint: true } });
    assert.equal(noImage.status, 400);
    const e = assertErrorShape(noImage.body);
    assert.equal(e.param, 'calibration.paint');
    assert.match(e.message, /needs an image/);
    const bad = await chat({ messages: withImage('checker.png', 'Hi'), calibration: { paint: { guidance: { cutoff: 2 } } } });
    assert.equal(bad.status, 400);
    assert.equal(assertErrorShape(bad.body).param, 'calibration.paint.guidance.cutoff');
    const layer = await chat({ messages: withImage('checker.png', 'Hi'), calibration: { paint: { layers: [0] } } });
    assert.equal(layer.status, 400);
    assert.equal(assertErrorShape(layer.body).param, 'calibration.paint.layers.0');
  });

  it('a streamed guided request that the client cuts off gives both of its slots back', async () => {
    const controller = new AbortController();
    const res = await postStream(`${s.url}/v1/chat/completions`, {
      messages: withImage('checker.png', 'Describe it.'), max_tokens: 200, ignore_eos: true, temperature: 0, stream: true, calibration: { paint: { guidance: true } },
    }, { signal: controller.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read();
    await waitFor(() => s.engine.stats.slotsInUse === 2, 'the main row and its companion to hold their slots');
    controller.abort();
    await reader.cancel().catch(() => undefined);
    await waitFor(() => s.engine.stats.slotsInUse === 0, 'both slots to be freed');
  });
});

describe('PAINT where it cannot run', () => {
  it('a text-only model answers 400 naming calibration.paint; a guided request larger than the engine is a 400', async () => {
    const stories = await startTestServer();
    try {
      const r = await postJson(`${stories.url}/v1/completions`, { prompt: 'Once', max_tokens: 2, calibration: { paint: true } });
      assert.equal(r.status, 400);
      const e = assertErrorShape(r.body);
      assert.equal(e.param, 'calibration.paint');
      assert.match(e.message, /no vision tower/);
    } finally {
      await stories.close();
    }
    const single = await startTestServer({ engine: { maxBatch: 1 } }, { model: 'tiny-llava' });
    try {
      const r = await postJson(`${single.url}/v1/chat/completions`, { messages: withImage('checker.png', 'Hi'), max_tokens: 2, calibration: { paint: { guidance: true } } });
      assert.equal(r.status, 400);
      assert.match(assertErrorShape(r.body).message, /needs 2 sequences at once, more than the engine's 1 slots/);
    } finally {
      await single.close();
    }
  });
});
