/**
 * Bad input: every bad field is a 4xx in the OpenAI error shape whose `param` names it, limits name
 * what was exceeded, known-unsupported fields are refused, images are validated then refused, and
 * the server keeps answering valid requests afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { Completion } from '../helpers/openai-types.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { jpegHeader, pngHeader } from '../helpers/image-headers.js';

const ok = { prompt: 'Once upon a time', max_tokens: 2, temperature: 0 };
const chatOk = { messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 2 };



function imageMessage(url: string) {
  return { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url } }] }] };
}

const dataUrl = (mime: string, bytes: Buffer) => `data:${mime};base64,${bytes.toString('base64')}`;

interface Case {
  name: string;
  path?: string;
  body: unknown;
  status?: number;
  param: string | null;
  code?: string;
  message?: RegExp;
}

const CASES: Case[] = [
  { name: 'missing prompt', body: { max_tokens: 2 }, param: 'prompt', code: 'missing_required_parameter' },
  { name: 'prompt of the wrong type', body: { prompt: 42 }, param: 'prompt' },
  { name: 'empty prompt array', body: { prompt: [] }, param: 'prompt' },
  { name: 'token id out of the vocabulary', body: { prompt: [1, 403, 99999] }, param: 'prompt.2', code: 'invalid_token_id' },
  { name: 'negative token id', body: { prompt: [1, -4] }, param: 'prompt.1' },
  { name: 'bad batch element', body: { prompt: ['ok', [1, 2.5]] }, param: 'prompt.1.1' },
  { name: 'too many prompts', body: { prompt: ['a', 'b', 'c'] }, param: 'prompt', message: /max_prompts/ },
  { name: 'prompt longer than max_prompt_chars', body: { prompt: 'x'.repeat(3000) }, param: 'prompt', code: 'prompt_too_long' },
  { name: 'prompt longer than the context', body: { prompt: Array.from({ length: 600 }, () => 261) }, param: 'prompt', code: 'context_length_exceeded' },
  { name: 'max_tokens beyond the context', body: { ...ok, max_tokens: 600 }, param: 'max_tokens', code: 'context_length_exceeded' },
  { name: 'negative max_tokens', body: { ...ok, max_tokens: -1 }, param: 'max_tokens' },
  { name: 'temperature of the wrong type', body: { ...ok, temperature: 'hot' }, param: 'temperature' },
  { name: 'negative temperature', body: { ...ok, temperature: -0.5 }, param: 'temperature' },
  { name: 'top_p zero', body: { ...ok, top_p: 0 }, param: 'top_p' },
  { name: 'top_k below -1', body: { ...ok, top_k: -2 }, param: 'top_k' },
  { name: 'min_p above 1', body: { ...ok, min_p: 1.5 }, param: 'min_p' },
  { name: 'presence_penalty out of range', body: { ...ok, presence_penalty: 3 }, param: 'presence_penalty' },
  { name: 'repetition_penalty zero', body: { ...ok, repetition_penalty: 0 }, param: 'repetition_penalty' },
  { name: 'repetition_penalty tiny (would make logits infinite)', body: { ...ok, repetition_penalty: 1e-300, temperature: 1 }, param: 'repetition_penalty' },
  { name: 'seed not an integer', body: { ...ok, seed: 1.5 }, param: 'seed' },
  { name: 'logprobs above 20', body: { ...ok, logprobs: 21 }, param: 'logprobs' },
  { name: 'too many stop strings', body: { ...ok, stop: ['a', 'b', 'c'] }, param: 'stop', message: /max_stop_strings/ },
  { name: 'stop string too long', body: { ...ok, stop: ['a', 'b'.repeat(20)] }, param: 'stop.1', message: /max_stop_string_length/ },
  { name: 'empty stop string', body: { ...ok, stop: '' }, param: 'stop' },
  { name: 'stop token id out of the vocabulary', body: { ...ok, stop_token_ids: [2, 512] }, param: 'stop_token_ids.1', code: 'invalid_token_id' },
  { name: 'logit_bias too large', body: { ...ok, logit_bias: { 1: 1, 2: 2, 3: 3 } }, param: 'logit_bias', message: /max_logit_bias/ },
  { name: 'logit_bias key not a token id', body: { ...ok, logit_bias: { abc: 1 } }, param: 'logit_bias.abc', code: 'invalid_token_id' },
  { name: 'logit_bias key out of the vocabulary', body: { ...ok, logit_bias: { 600: 1 } }, param: 'logit_bias.600', code: 'invalid_token_id' },
  { name: 'logit_bias value out of range', body: { ...ok, logit_bias: { 5: 101 } }, param: 'logit_bias.5' },
  { name: 'n above max_n', body: { ...ok, n: 3 }, param: 'n', message: /max_n/ },
  { name: 'n zero', body: { ...ok, n: 0 }, param: 'n' },
  { name: 'best_of other than n', body: { ...ok, best_of: 2 }, param: 'best_of', code: 'unsupported_parameter' },
  { name: 'suffix', body: { ...ok, suffix: 'end' }, param: 'suffix', code: 'unsupported_parameter' },
  { name: 'response_format json', body: { ...ok, response_format: { type: 'json_object' } }, param: 'response_format', code: 'unsupported_parameter' },
  { name: 'guided_json', body: { ...ok, guided_json: {} }, param: 'guided_json', code: 'unsupported_parameter' },
  { name: 'prompt_logprobs -1 (the whole vocabulary)', body: { ...ok, prompt_logprobs: -1 }, param: 'prompt_logprobs', message: /at least 0/ },
  { name: 'prompt_logprobs above 20', body: { ...ok, prompt_logprobs: 21 }, param: 'prompt_logprobs', message: /max_logprobs/ },
  { name: 'prompt_logprobs with stream', body: { ...ok, prompt_logprobs: 1, stream: true }, param: 'prompt_logprobs', message: /stream/ },
  { name: 'stream of the wrong type', body: { ...ok, stream: 'yes' }, param: 'stream' },
  { name: 'stream_options without stream', body: { ...ok, stream_options: { include_usage: true } }, param: 'stream_options' },
  { name: 'continuous usage stats', body: { ...ok, stream: true, stream_options: { continuous_usage_stats: true } }, param: 'stream_options.continuous_usage_stats', code: 'unsupported_parameter' },
  { name: 'unknown model', body: { ...ok, model: 'gpt-4' }, status: 404, param: 'model', code: 'model_not_found' },
  { name: 'calibration not an object', body: { ...ok, calibration: [1] }, param: 'calibration' },
  { name: 'unknown calibrator', body: { ...ok, calibration: { nope: true } }, param: 'calibration.nope', code: 'unknown_calibrator' },
  { name: 'bad calibration report', body: { ...ok, calibration: { report: 'all' } }, param: 'calibration.report' },
  { name: 'calibration both ways', body: { ...ok, calibration: {}, vllm_xargs: { calibration: {} } }, param: 'vllm_xargs.calibration' },
  { name: 'calibration xargs not JSON', body: { ...ok, vllm_xargs: { calibration: '{nope' } }, param: 'vllm_xargs.calibration' },
  { name: 'calibration value of the wrong type', body: { ...ok, calibration: { act: 3 } }, param: 'calibration.act' },
  { name: 'calibration config out of range', body: { ...ok, calibration: { act: { beta: 2 } } }, param: 'calibration.act.beta' },
  { name: 'calibration threshold out of range', body: { ...ok, calibration: { act: { threshold: 0 } } }, param: 'calibration.act.threshold' },
  { name: 'calibration config unknown key', body: { ...ok, calibration: { act: { gamma: 1 } } }, param: 'calibration.act' },
  { name: 'calibration head layer key', body: { ...ok, calibration: { act: { heads: { x: [1] } } } }, param: 'calibration.act.heads.x' },
  { name: 'calibration layer without ACT', body: { ...ok, calibration: { act: { heads: { 0: [1] } } } }, param: 'calibration.act.heads.0' },
  { name: 'calibration head out of range', body: { ...ok, calibration: { act: { heads: { 2: [1, 8] } } } }, param: 'calibration.act.heads.2.1' },
  { name: 'calibration heads not a list', body: { ...ok, calibration: { act: { heads: { 2: 1 } } } }, param: 'calibration.act.heads.2' },
  { name: 'unknown vllm_xargs key (would be dropped)', body: { ...ok, vllm_xargs: { my_processor: 1 } }, param: 'vllm_xargs' },
  { name: 'empty prompt without special tokens', body: { ...ok, prompt: '', add_special_tokens: false }, param: 'prompt' },
  { name: 'calibration via vllm_xargs', body: { ...ok, vllm_xargs: { calibration: { act: { threshold: 0 } } } }, param: 'vllm_xargs.calibration.act.threshold' },
  // Chat
  { name: 'no messages', path: '/v1/chat/completions', body: { messages: [] }, param: 'messages' },
  { name: 'too many messages', path: '/v1/chat/completions', body: { messages: Array.from({ length: 4 }, () => ({ role: 'user', content: 'hi' })) }, param: 'messages', message: /max_messages/ },
  { name: 'unknown role', path: '/v1/chat/completions', body: { messages: [{ role: 'wizard', content: 'hi' }] }, param: 'messages.0.role' },
  { name: 'content of the wrong type', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 5 }] }, param: 'messages.0.content' },
  { name: 'unknown content part', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }, param: 'messages.0.content.0.type' },
  { name: 'text part without text', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: [{ type: 'text' }] }] }, param: 'messages.0.content.0.text' },
  { name: 'tools', path: '/v1/chat/completions', body: { ...chatOk, tools: [{ type: 'function' }] }, param: 'tools', code: 'unsupported_parameter' },
  { name: 'tool calls in history', path: '/v1/chat/completions', body: { messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'x' }] }] }, param: 'messages.0.tool_calls', code: 'unsupported_parameter' },
  { name: 'per-request chat template', path: '/v1/chat/completions', body: { ...chatOk, chat_template: '{{ 7*7 }}' }, param: 'chat_template', code: 'unsupported_parameter' },
  { name: 'top_logprobs above 20', path: '/v1/chat/completions', body: { ...chatOk, logprobs: true, top_logprobs: 21 }, param: 'top_logprobs' },
  { name: 'top_logprobs without logprobs', path: '/v1/chat/completions', body: { ...chatOk, top_logprobs: 2 }, param: 'top_logprobs' },
  { name: 'max_completion_tokens beyond the context', path: '/v1/chat/completions', body: { ...chatOk, max_completion_tokens: 10_000 }, param: 'max_completion_tokens', code: 'context_length_exceeded' },
  // Images: validated first, then refused because the model has no vision tower.
  { name: 'valid PNG, no vision tower', path: '/v1/chat/completions', body: imageMessage(dataUrl('image/png', pngHeader(32, 32))), param: 'messages.0.content.1', code: 'model_has_no_vision_tower' },
  { name: 'valid JPEG, no vision tower', path: '/v1/chat/completions', body: imageMessage(dataUrl('image/jpeg', jpegHeader(20, 10))), param: 'messages.0.content.1', code: 'model_has_no_vision_tower' },
  { name: 'http image URL', path: '/v1/chat/completions', body: imageMessage('https://example.com/cat.png'), param: 'messages.0.content.1.image_url.url', code: 'image_url_fetch_disabled' },
  { name: 'file image URL', path: '/v1/chat/completions', body: imageMessage('file:///etc/passwd'), param: 'messages.0.content.1.image_url.url', code: 'invalid_image_url' },
  { name: 'unsupported image type', path: '/v1/chat/completions', body: imageMessage('data:image/gif;base64,R0lGODlh'), param: 'messages.0.content.1.image_url.url', code: 'unsupported_image_type' },
  { name: 'image not base64', path: '/v1/chat/completions', body: imageMessage('data:image/png,rawbytes'), param: 'messages.0.content.1.image_url.url', code: 'invalid_image_url' },
  { name: 'corrupt base64', path: '/v1/chat/completions', body: imageMessage('data:image/png;base64,!!!!'), param: 'messages.0.content.1.image_url.url', code: 'invalid_image_url' },
  { name: 'bytes that are not a PNG', path: '/v1/chat/completions', body: imageMessage(dataUrl('image/png', Buffer.from('not an image at all'))), param: 'messages.0.content.1.image_url.url', code: 'invalid_image' },
  { name: 'image over the byte cap', path: '/v1/chat/completions', body: imageMessage(dataUrl('image/png', Buffer.concat([pngHeader(8, 8), Buffer.alloc(2000)]))), param: 'messages.0.content.1.image_url.url', code: 'image_too_large' },
  { name: 'image over the pixel cap', path: '/v1/chat/completions', body: imageMessage(dataUrl('image/png', pngHeader(1000, 1000))), param: 'messages.0.content.1.image_url.url', code: 'image_too_many_pixels' },
  // tokenize / detokenize
  { name: 'tokenize without prompt', path: '/tokenize', body: {}, param: 'prompt' },
  { name: 'detokenize out of the vocabulary', path: '/detokenize', body: { tokens: [1, 9999] }, param: 'tokens.1', code: 'invalid_token_id' },
];

describe('validation', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({
      limits: {
        maxStopStrings: 2,
        maxStopStringLength: 10,
        maxMessages: 3,
        maxLogitBias: 2,
        maxN: 2,
        maxPrompts: 2,
        maxPromptChars: 2000,
        maxImageBytes: 1000,
        maxImagePixels: 10_000,
        bodyLimitBytes: 64 * 1024,
      },
    });
  });
  after(async () => {
    await s.close();
  });

  for (const c of CASES) {
    it(`${c.name} → ${c.status ?? 400} naming ${c.param}`, async () => {
      const r = await postJson(`${s.url}${c.path ?? '/v1/completions'}`, c.body);
      assert.equal(r.status, c.status ?? 400, JSON.stringify(r.body));
      const e = assertErrorShape(r.body);
      assert.equal(e.param, c.param, e.message);
      if (c.code) assert.equal(e.code, c.code, e.message);
      if (c.message) assert.match(e.message, c.message);
      if ((c.status ?? 400) === 400) assert.equal(e.type, 'invalid_request_error');
    });
  }

  it('refuses an oversized body with 413, naming the limit', async () => {
    const r = await postJson(`${s.url}/v1/completions`, { prompt: 'x'.repeat(70 * 1024) });
    assert.equal(r.status, 413);
    assert.match(assertErrorShape(r.body).message, /65536 bytes/);
  });

  it('refuses malformed JSON, a non-object body and a wrong content type with 4xx', async () => {
    const bad = await postJson(`${s.url}/v1/completions`, '{"prompt": "x",');
    assert.equal(bad.status, 400);
    assert.equal(assertErrorShape(bad.body).code, 'invalid_json');
    const proto = await postJson(`${s.url}/v1/completions`, '{"prompt":"x","__proto__":{"admin":true}}');
    assert.equal(proto.status, 400);
    const array = await postJson(`${s.url}/v1/completions`, [1, 2]);
    assert.equal(array.status, 400);
    assert.equal(assertErrorShape(array.body).param, null);
    const text = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
    assert.equal(text.status, 400);
    assertErrorShape(await text.json());
    const xml = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' });
    assert.equal(xml.status, 415);
    assertErrorShape(await xml.json());
  });

  it('ignores unknown fields, as OpenAI does', async () => {
    const r = await postJson<Completion>(`${s.url}/v1/completions`, { ...ok, frobnicate: true, user: 'u-1', metadata: { a: 1 } });
    assert.equal(r.status, 200);
  });

  it('answers an unknown route with 404 in the same shape', async () => {
    const res = await fetch(`${s.url}/v1/embeddings`, { method: 'POST' });
    assert.equal(res.status, 404);
    assert.equal(assertErrorShape(await res.json()).type, 'not_found_error');
  });

  it('still answers a valid request, and counted the failures as validation', async () => {
    const r = await postJson<Completion>(`${s.url}/v1/completions`, ok);
    assert.equal(r.status, 200);
    assert.equal(r.body.choices[0]!.text, ', there');
    const text = await scrape(s.url);
    assert.ok(metricValue(text, 'attune:request_failure_total', { reason: 'validation' })! >= 40);
    assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'internal' }), 0);
    assert.equal(s.app.attune.admission.admitted, 0, 'refused requests hold no admission');
  });
});
