/**
 * VHR over real HTTP against a real server and engine worker serving tiny-llava: an image chat with
 * `calibration.vhr` reports its selection (summary and full) and its logprobs equal the float64 VHR
 * reference; streams carry the report; the prepass time and the report's counts reach /metrics; and
 * what VHR cannot run is a 400 naming the field (no image, bad settings, a text-only model).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { ChatCompletion } from '../helpers/openai-types.js';
import { collectSse, postStream } from '../helpers/sse.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { loadTinyLlava, tinyLlavaImage, tinyLlavaImagePath, tinyLlavaPrompt, type TinyLlava } from '../helpers/tiny-llava.js';
import { vhrReferenceRun } from '../helpers/vhr-tiny-llava.js';
import { vhr } from '../../calibrators/vhr.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { parseCalibration } from '../../src/api/calibration.js';
import { ApiError } from '../../src/api/errors.js';
import { visionFacts } from '../../models/vision-model.js';
import { computeTokenLogprobs } from '../../src/engine/sampling/logprobs.js';

const fixture = (file: string) => `data:image/png;base64,${readFileSync(tinyLlavaImagePath(file)).toString('base64')}`;
const userTurn = (text: string, ...urls: string[]) => [{ role: 'user', content: [...urls.map((url) => ({ type: 'image_url', image_url: { url } })), { type: 'text', text }] }];

type Chat = ChatCompletion & {
  choices: (ChatCompletion['choices'][number] & { token_ids?: number[] })[];
  calibration?: { vhr?: Record<string, unknown> };
};

/** The reference's logprob of a token, through the server's own log-softmax (float32 logits in, float64 sums). */
const referenceLogprob = (logits: Float64Array, token: number) => computeTokenLogprobs(Float32Array.from(logits), token, 0).logprob;

describe('VHR over HTTP: tiny-llava', () => {
  let s: TestServer;
  let m: TinyLlava;
  before(async () => {
    [s, m] = await Promise.all([startTestServer({}, { model: 'tiny-llava' }), loadTinyLlava()]);
  });
  after(async () => {
    await s.close();
  });

  it('an image chat with VHR: the full report, and greedy logprobs equal the float64 VHR reference', async () => {
    const before = await scrape(s.url);
    const r = await postJson<Chat>(`${s.url}/v1/chat/completions`, {
      messages: userTurn('What is in the picture?', fixture('checker.png')),
      max_tokens: 10, temperature: 0, logprobs: true, return_token_ids: true, ignore_eos: true,
      calibration: { vhr: { alpha: 2.5, outlier_guard: false }, report: 'full' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const report = r.body.calibration!.vhr as { active: boolean; alpha: number; layers: number[]; heads_selected: number; heads_selected_per_layer: Record<string, number>; heads: Record<string, number[]>; vhd: Record<string, number[]> };
    assert.equal(report.active, true);
    assert.equal(report.alpha, 2.5);
    assert.deepEqual(report.layers, [1, 2, 3, 4]);
    assert.deepEqual(Object.keys(report.heads), ['1', '2', '3', '4']);
    for (const [l, hs] of Object.entries(report.heads)) assert.equal(report.heads_selected_per_layer[l], hs.length);
    assert.equal(report.heads_selected, Object.values(report.heads).flat().length);
    for (const v of Object.values(report.vhd)) assert.equal(v.length, 8);

    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    const cfg = vhr.resolve({ alpha: 2.5, outlier_guard: false }, { name: 'tiny-llava', config: m.weights.config, profile: {}, vision: visionFacts(m.vision.weights.config, m.vision.spec.imageTokenId) });
    const generated = r.body.choices[0]!.token_ids!;
    const ref = vhrReferenceRun(m, prompt, [await tinyLlavaImage(m, 'checker.png')], cfg, generated);
    assert.deepEqual(report.heads, ref.selection.heads);
    const content = r.body.choices[0]!.logprobs!.content!;
    generated.forEach((t, k) => {
      const logits = k === 0 ? ref.promptLogits.at(-1)! : ref.stepLogits[k - 1]!;
      assert.ok(Math.abs(content[k]!.logprob - referenceLogprob(logits, t)) < 1e-4, `token ${k}`);
    });

    const metrics = await scrape(s.url);
    const delta = (name: string) => (metricValue(metrics, name) ?? 0) - (metricValue(before, name) ?? 0);
    assert.equal(delta('attune:request_prepass_time_seconds_count'), 1, 'the prepass time is observed once');
    assert.equal(delta('attune:vhr_heads_selected_count'), 1);
    assert.equal(delta('attune:vhr_heads_selected_sum'), report.heads_selected);
    assert.equal(metricValue(metrics, 'attune:vhr_alpha_count'), undefined, 'config echoes are not observations');
    assert.ok((metricValue(metrics, 'attune:calibration_requests_total', { calibrator: 'vhr' }) ?? 0) >= 1);
  });

  it('streams with VHR on (the summary report in the final chunk) and plain image chats spend no prepass time', async () => {
    const before = await scrape(s.url);
    const res = await postStream(`${s.url}/v1/chat/completions`, {
      messages: userTurn('Hello', fixture('half_bright.png')), max_tokens: 6, temperature: 0, stream: true, calibration: { vhr: true },
    });
    const { chunks, done } = await collectSse<{ calibration?: { vhr?: { active: boolean; heads_selected: number; heads?: unknown } } }>(res);
    assert.ok(done);
    const report = chunks.map((c) => c.calibration?.vhr).find((x) => x !== undefined);
    assert.equal(report?.active, true);
    assert.equal(report?.heads, undefined, 'summary by default');
    const plain = await postJson<Chat>(`${s.url}/v1/chat/completions`, { messages: userTurn('Hello', fixture('half_bright.png')), max_tokens: 3 });
    assert.equal(plain.status, 200);
    const after = await scrape(s.url);
    assert.equal((metricValue(after, 'attune:request_prepass_time_seconds_count') ?? 0) - (metricValue(before, 'attune:request_prepass_time_seconds_count') ?? 0), 1);
  });

  it('refuses what VHR cannot run with a 400 naming the field', async () => {
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ['no image', { messages: [{ role: 'user', content: 'Tell me a story.' }], calibration: { vhr: true } }, 'calibration.vhr', /no image/],
      ['completions without images', { prompt: 'Once upon a time', calibration: { vhr: {} } }, 'calibration.vhr', /no image/],
      ['alpha 0', { messages: userTurn('Hi', fixture('checker.png')), calibration: { vhr: { alpha: 0 } } }, 'calibration.vhr.alpha', /./],
      ['alpha too large', { messages: userTurn('Hi', fixture('checker.png')), calibration: { vhr: { alpha: 1e6 } } }, 'calibration.vhr.alpha', /./],
      ['a layer the model lacks', { messages: userTurn('Hi', fixture('checker.png')), calibration: { vhr: { layers: [1, 9] } } }, 'calibration.vhr.layers.1', /does not exist/],
      ['an unknown distance', { messages: userTurn('Hi', fixture('checker.png')), calibration: { vhr: { distance: 'cosine' } } }, 'calibration.vhr.distance', /./],
      ['an unknown option', { messages: userTurn('Hi', fixture('checker.png')), calibration: { vhr: { text_branch: 'reinforced' } } }, 'calibration.vhr', /text_branch/],
    ];
    for (const [what, body, param, message] of cases) {
      const path = 'messages' in body ? '/v1/chat/completions' : '/v1/completions';
      const r = await postJson(`${s.url}${path}`, { max_tokens: 2, ...body });
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
      const e = assertErrorShape(r.body);
      assert.equal(e.param, param, `${what}: ${e.message}`);
      assert.match(e.message, message, what);
    }
  });

  it('a text-only model refuses VHR at the edge', () => {
    const facts = { name: 'stories260K', config: m.weights.config, profile: {} };
    assert.throws(
      () => parseCalibration({ calibration: { vhr: true } }, new Map([['vhr', vhr as AnyCalibrator]]), facts),
      (e: unknown) => e instanceof ApiError && e.statusCode === 400 && e.param === 'calibration.vhr' && /no vision tower/.test(e.message),
    );
  });
});
