/**
 * Image chats over real HTTP against a real server and engine worker serving tiny-llava: images as
 * data URLs, decoded with sharp and preprocessed; `return_token_ids` shows where the image tokens
 * sit; prompt logprobs and a greedy decode's logprobs equal the float64 reference; two images; a
 * non-square image larger than the tower's input is resized and cropped; streaming; bad images are
 * 4xx naming the field and never a 5xx; and the model says it takes images.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { ChatCompletion } from '../helpers/openai-types.js';
import { collectSse, postStream } from '../helpers/sse.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { pngHeader } from '../helpers/image-headers.js';
import { loadTinyLlava, referenceRun, tinyLlavaImage, tinyLlavaImagePath, tinyLlavaPrompt, type TinyLlava } from '../helpers/tiny-llava.js';

const dataUrl = (bytes: Uint8Array, mime = 'image/png') => `data:${mime};base64,${Buffer.from(bytes).toString('base64')}`;
const fixture = (file: string) => dataUrl(readFileSync(tinyLlavaImagePath(file)));
const imagePart = (url: string) => ({ type: 'image_url', image_url: { url } });
const userTurn = (text: string, ...urls: string[]) => [{ role: 'user', content: [...urls.map(imagePart), { type: 'text', text }] }];

type Chat = ChatCompletion & {
  prompt_token_ids?: number[];
  prompt_logprobs?: (Record<string, { logprob: number; rank: number }> | null)[];
  choices: (ChatCompletion['choices'][number] & { token_ids?: number[] })[];
};

function logSoftmax(logits: Float64Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return logits.map((v) => v - lse);
}

describe('LVLM over HTTP: tiny-llava', () => {
  let s: TestServer;
  let m: TinyLlava;
  before(async () => {
    [s, m] = await Promise.all([startTestServer({}, { model: 'tiny-llava' }), loadTinyLlava()]);
  });
  after(async () => {
    await s.close();
  });

  it('says the model takes images', async () => {
    const r = await getJson<{ data: { id: string; capabilities: { vision: boolean } }[] }>(`${s.url}/v1/models`);
    assert.deepEqual(r.body.data.map((d) => [d.id, d.capabilities.vision]), [['tiny-llava', true]]);
  });

  it('an image chat: prompt_token_ids with 16 image tokens in place; prompt and greedy logprobs equal the float64 reference', async () => {
    const r = await postJson<Chat>(`${s.url}/v1/chat/completions`, {
      messages: userTurn('What is in the picture?', fixture('half_bright.png')),
      max_tokens: 12, temperature: 0, logprobs: true, prompt_logprobs: 0, return_token_ids: true, ignore_eos: true,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const prompt = tinyLlavaPrompt(m, 'What is in the picture?', 1);
    assert.deepEqual(r.body.prompt_token_ids, prompt.ids);
    const start = prompt.ids.indexOf(0);
    assert.deepEqual(r.body.prompt_token_ids!.slice(start, start + 17), [...new Array(16).fill(0), 13], '16 image tokens, then the template\'s newline');
    assert.equal(r.body.usage!.prompt_tokens, prompt.ids.length);
    const generated = r.body.choices[0]!.token_ids!;
    assert.equal(generated.length, 12);

    const ref = referenceRun(m, prompt, [await tinyLlavaImage(m, 'half_bright.png')], generated);
    let worst = 0;
    r.body.prompt_logprobs!.forEach((entry, p) => {
      if (p === 0) return assert.equal(entry, null);
      const lp = logSoftmax(ref.promptLogits[p - 1]!)[prompt.ids[p]!]!;
      worst = Math.max(worst, Math.abs(entry![String(prompt.ids[p])]!.logprob - lp));
    });
    const content = r.body.choices[0]!.logprobs!.content!;
    generated.forEach((t, k) => {
      const logits = k === 0 ? ref.promptLogits.at(-1)! : ref.stepLogits[k - 1]!;
      worst = Math.max(worst, Math.abs(content[k]!.logprob - logSoftmax(logits)[t]!));
    });
    assert.ok(worst < 1e-4, `worst logprob difference ${worst}`);
  });

  it('two images in one prompt, and a non-square image larger than the tower\'s input (resized, then cropped)', async () => {
    // 400×260: large enough that the server transforms it on its worker thread.
    const wide = await sharp({ create: { width: 400, height: 260, channels: 3, background: { r: 240, g: 240, b: 240 } } })
      .composite([{ input: { create: { width: 120, height: 260, channels: 3, background: { r: 10, g: 20, b: 120 } } }, left: 280, top: 0 }])
      .png()
      .toBuffer();
    const r = await postJson<Chat>(`${s.url}/v1/chat/completions`, {
      messages: userTurn('Compare the two.', dataUrl(wide), fixture('checker.png')),
      max_tokens: 8, temperature: 0, logprobs: true, return_token_ids: true, ignore_eos: true,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const prompt = tinyLlavaPrompt(m, 'Compare the two.', 2);
    assert.deepEqual(r.body.prompt_token_ids, prompt.ids);
    assert.equal(r.body.prompt_token_ids!.filter((t) => t === 0).length, 32);
    const images = [await tinyLlavaImage(m, wide), await tinyLlavaImage(m, 'checker.png')];
    const generated = r.body.choices[0]!.token_ids!;
    const ref = referenceRun(m, prompt, images, generated);
    const content = r.body.choices[0]!.logprobs!.content!;
    generated.forEach((t, k) => {
      const logits = k === 0 ? ref.promptLogits.at(-1)! : ref.stepLogits[k - 1]!;
      assert.ok(Math.abs(content[k]!.logprob - logSoftmax(logits)[t]!) < 1e-4, `token ${k}`);
    });
  });

  it('streams an image chat (prompt_token_ids in the first chunk, token ids per chunk) and counts its encoder time', async () => {
    const before = await scrape(s.url);
    const res = await postStream(`${s.url}/v1/chat/completions`, {
      messages: userTurn('Hello', fixture('one_bright_patch.png')), max_tokens: 6, temperature: 0, stream: true, return_token_ids: true, return_tokens_as_token_ids: true, logprobs: true,
    });
    type Chunk = { prompt_token_ids?: number[]; choices: { delta: { content?: string }; token_ids?: number[]; logprobs: { content: { token: string }[] } | null }[] };
    const { chunks } = await collectSse<Chunk>(res);
    assert.equal(chunks[0]!.prompt_token_ids!.filter((t) => t === 0).length, 16);
    const ids = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.token_ids ?? []));
    assert.equal(ids.length, 6);
    const tokens = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.logprobs?.content.map((x) => x.token) ?? []));
    assert.deepEqual(tokens, ids.map((t) => `token_id:${t}`), 'return_tokens_as_token_ids works on chat');
    const after = await scrape(s.url);
    const count = (text: string) => metricValue(text, 'attune:request_encoder_time_seconds_count') ?? 0;
    assert.equal(count(after) - count(before), 1);
  });

  it('a text-only chat on the LVLM needs no image and spends no encoder time', async () => {
    const r = await postJson<Chat>(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 5, temperature: 0, return_token_ids: true });
    assert.equal(r.status, 200);
    assert.ok(!r.body.prompt_token_ids!.includes(0));
  });

  it('bad images are 4xx naming the field, never a 5xx, and the server keeps serving', async () => {
    const png = readFileSync(tinyLlavaImagePath('noise_two_bright.png'));
    const corrupt = Buffer.from(png);
    corrupt.fill(0x5a, 40);
    const cases: [string, string, RegExp][] = [
      ['truncated', dataUrl(png.subarray(0, 60)), /image/],
      ['corrupt', dataUrl(corrupt), /image/],
      ['not an image', `data:text/plain;base64,${Buffer.from('hello').toString('base64')}`, /not supported/],
      ['decompression bomb', dataUrl(pngHeader(100_000, 100_000)), /pixels/],
      ['declared PNG, JPEG bytes', dataUrl(await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } }).jpeg().toBuffer()), /image/],
    ];
    for (const [what, url, message] of cases) {
      const r = await postJson(`${s.url}/v1/chat/completions`, { messages: userTurn('Hi', fixture('checker.png'), url), max_tokens: 2 });
      assert.ok(r.status >= 400 && r.status < 500, `${what}: status ${r.status}`);
      const e = assertErrorShape(r.body);
      assert.equal(e.param, 'messages.0.content.1.image_url.url', `${what}: ${e.message}`);
      assert.match(e.message, message, what);
    }
    const many = await postJson(`${s.url}/v1/chat/completions`, { messages: userTurn('Hi', ...new Array(9).fill(fixture('checker.png'))), max_tokens: 2 });
    assert.equal(many.status, 400);
    assert.match(assertErrorShape(many.body).message, /at most 8 images/);
    const placeholder = await postJson(`${s.url}/v1/chat/completions`, { messages: userTurn('Look: <image>', fixture('checker.png')), max_tokens: 2 });
    assert.equal(placeholder.status, 400);
    assert.match(assertErrorShape(placeholder.body).message, /reserved for images/);
    const ok = await postJson<Chat>(`${s.url}/v1/chat/completions`, { messages: userTurn('Hi', fixture('checker.png')), max_tokens: 2 });
    assert.equal(ok.status, 200);
  });

  it('a completions prompt cannot smuggle in image tokens without images', async () => {
    const r = await postJson(`${s.url}/v1/completions`, { prompt: [1, 0, 0, 5], max_tokens: 2 });
    assert.equal(r.status, 400);
    const e = assertErrorShape(r.body);
    assert.equal(e.param, 'prompt.1');
    assert.match(e.message, /image token/);
  });
});
