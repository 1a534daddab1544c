/**
 * The OpenAI client flow over real HTTP against a real server and engine: completions, chat, SSE
 * read chunk by chunk, usage, logprobs (with return_tokens_as_token_ids), echo, the golden greedy
 * text, tokenize, models, calibrators, and the metrics all of that leaves behind.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';
import type { EngineEvent, TokenLogprobs } from '../../src/engine/types.js';
import { getJson, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import { repoRoot } from '../helpers/models-dir.js';
import type { ChatCompletion, Completion, Usage } from '../helpers/openai-types.js';
import { collectSse, postStream, readSse } from '../helpers/sse.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const GOLDEN_TEXT = readFileSync(join(repoRoot, 'test', 'fixtures', 'stories260K-greedy-256.txt'), 'utf8').replace(/\n$/, '');
const GOLDEN_IDS = JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'stories260K-greedy-256.json'), 'utf8')) as number[];
const ONCE_IDS = [1, 403, 407, 261, 378];

function tokenIds(tokens: readonly string[]): number[] {
  return tokens.map((t) => {
    const m = /^token_id:(\d+)$/.exec(t);
    assert.ok(m, `expected token_id:N, got ${t}`);
    return Number(m[1]);
  });
}

describe('OpenAI flow', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  it('lists the model with its context length', async () => {
    const r = await getJson<{ object: string; data: { id: string; object: string; max_model_len: number }[] }>(`${s.url}/v1/models`);
    assert.equal(r.status, 200);
    assert.equal(r.body.object, 'list');
    assert.deepEqual(
      r.body.data.map((m) => [m.id, m.object, m.max_model_len]),
      [['stories260K', 'model', 512]],
    );
  });

  it('completes a prompt with usage, and echoes X-Request-Id', async () => {
    const r = await postJson<Completion>(`${s.url}/v1/completions`, { model: 'stories260K', prompt: 'Once upon a time', max_tokens: 16, temperature: 0 }, { 'x-request-id': 'req-abc.1' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-request-id'), 'req-abc.1');
    assert.match(r.body.id, /^cmpl-/);
    assert.equal(r.body.object, 'text_completion');
    assert.equal(r.body.model, 'stories260K');
    assert.equal(r.body.choices.length, 1);
    assert.ok(r.body.choices[0]!.text.startsWith(', there was a little girl'), r.body.choices[0]!.text);
    assert.equal(r.body.choices[0]!.finish_reason, 'length');
    assert.equal(r.body.choices[0]!.logprobs, null);
    assert.deepEqual(r.body.usage, { prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 });
    assert.equal(r.body.calibration, undefined);
  });

  it('reproduces the stories260K golden text greedily from BOS', async () => {
    const r = await postJson<Completion>(`${s.url}/v1/completions`, {
      prompt: [1],
      max_tokens: 256,
      temperature: 0,
      logprobs: 0,
      return_tokens_as_token_ids: true,
    });
    assert.equal(r.status, 200);
    const choice = r.body.choices[0]!;
    assert.equal(choice.text, GOLDEN_TEXT);
    assert.deepEqual(tokenIds(choice.logprobs!.tokens), GOLDEN_IDS);
    // The brief's 255-token variant is a prefix of the same run.
    const short = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: [1], max_tokens: 255, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true });
    assert.deepEqual(tokenIds(short.body.choices[0]!.logprobs!.tokens), GOLDEN_IDS.slice(0, 255));
    assert.ok(GOLDEN_TEXT.startsWith(short.body.choices[0]!.text));
  });

  it('returns logprobs with tokens as token ids, in the tokens and as top_logprobs keys', async () => {
    const r = await postJson<Completion>(`${s.url}/v1/completions`, {
      prompt: 'Once upon a time',
      max_tokens: 6,
      temperature: 0,
      logprobs: 3,
      return_tokens_as_token_ids: true,
    });
    assert.equal(r.status, 200);
    const lp = r.body.choices[0]!.logprobs!;
    assert.equal(lp.tokens.length, 6);
    const ids = tokenIds(lp.tokens);
    assert.equal(lp.token_logprobs.length, 6);
    assert.equal(lp.top_logprobs.length, 6);
    lp.top_logprobs.forEach((top, k) => {
      assert.ok(top);
      const keys = Object.keys(top);
      assert.equal(keys.length, 3);
      for (const key of keys) assert.match(key, /^token_id:\d+$/);
      // Greedy: the chosen token is the most likely one.
      assert.equal(keys[0], `token_id:${ids[k]}`);
      assert.equal(top[keys[0]!], lp.token_logprobs[k]);
      assert.ok(lp.token_logprobs[k]! <= 0);
    });
    assert.deepEqual(lp.text_offset.slice(0, 2), [0, 1]);
    const noBos = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 1, add_special_tokens: false });
    assert.equal(noBos.body.usage!.prompt_tokens, ONCE_IDS.length - 1, 'add_special_tokens: false leaves BOS out');
    const plain = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logprobs: 1 });
    assert.equal(plain.body.choices[0]!.logprobs!.tokens.join(''), plain.body.choices[0]!.text);
  });

  it('echo with logprobs returns the prompt logprobs the engine computes, null for the first token', async () => {
    const body = { prompt: 'Once upon a time', echo: true, logprobs: 5, max_tokens: 0, return_tokens_as_token_ids: true };
    const r = await postJson<Completion>(`${s.url}/v1/completions`, body);
    assert.equal(r.status, 200);
    const choice = r.body.choices[0]!;
    assert.equal(choice.text, 'Once upon a time');
    const lp = choice.logprobs!;
    assert.deepEqual(tokenIds(lp.tokens), ONCE_IDS);
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.top_logprobs[0], null);
    // Offsets index the returned text: BOS adds nothing, and "Once" starts at 0 without a space.
    assert.deepEqual(lp.text_offset, [0, 0, 4, 9, 11]);
    assert.deepEqual(r.body.usage, { prompt_tokens: 5, completion_tokens: 0, total_tokens: 5 });

    // The same scoring straight through the engine.
    let direct: (TokenLogprobs | null)[] | null = null;
    for await (const e of s.engine.generate({
      id: 'echo-direct',
      promptIds: ONCE_IDS,
      sampling: { ...GREEDY_DEFAULTS, maxTokens: 0, promptLogprobs: 5 },
      calibration: {},
    }) as AsyncIterable<EngineEvent>) {
      if (e.type === 'prompt') direct = e.logprobs;
    }
    assert.ok(direct);
    assert.equal(direct.length, ONCE_IDS.length);
    direct.forEach((entry, k) => {
      if (k === 0) return assert.equal(entry, null);
      assert.equal(lp.token_logprobs[k], entry!.logprob);
      assert.deepEqual(lp.top_logprobs[k], Object.fromEntries(entry!.top.map((t) => [`token_id:${t.id}`, t.logprob])));
    });

    // Echo plus generation: the prompt entries come first, then the generated ones.
    const gen = await postJson<Completion>(`${s.url}/v1/completions`, { ...body, max_tokens: 3, temperature: 0 });
    const g = gen.body.choices[0]!;
    assert.ok(g.text.startsWith('Once upon a time, there'), g.text);
    assert.equal(g.logprobs!.tokens.length, ONCE_IDS.length + 3);
    assert.deepEqual(g.logprobs!.token_logprobs.slice(0, 5), lp.token_logprobs);
  });

  it('streams completions chunk by chunk, ending with usage and [DONE]', async () => {
    const body = { prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
    const whole = await postJson<Completion>(`${s.url}/v1/completions`, body);
    const res = await postStream(`${s.url}/v1/completions`, { ...body, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    assert.ok(res.headers.get('x-request-id'));
    const reader = readSse(res);
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    let usage: Usage | null = null;
    let done = false;
    for await (const e of reader.events) {
      assert.equal(done, false, 'nothing may follow [DONE]');
      if (e.data === '[DONE]') {
        done = true;
        continue;
      }
      const chunk = JSON.parse(e.data) as Completion;
      assert.equal(chunk.object, 'text_completion');
      if (chunk.usage) {
        assert.equal(chunk.choices.length, 0);
        usage = chunk.usage;
        continue;
      }
      assert.equal(chunk.choices.length, 1);
      assert.equal(finish, null, 'no text after the finish chunk');
      text += chunk.choices[0]!.text;
      finish = chunk.choices[0]!.finish_reason;
      chunks++;
    }
    assert.ok(done);
    assert.ok(chunks > 5, `expected token-by-token chunks, got ${chunks}`);
    assert.equal(text, whole.body.choices[0]!.text);
    assert.equal(finish, 'length');
    assert.deepEqual(usage, whole.body.usage);
  });

  it("returns vLLM's prompt_logprobs: on each completions choice, at the top of a chat", async () => {
    type Ranked = Record<string, { logprob: number; rank: number; decoded_token: string }>;
    // echo + logprobs 1 gives the reference logprob of every prompt token, from the same engine pass.
    const body = { prompt: 'Once upon a time', prompt_logprobs: 3, echo: true, logprobs: 1, max_tokens: 1, temperature: 0, n: 2 };
    const r = await postJson<Completion & { choices: { prompt_logprobs: (Ranked | null)[] }[] }>(`${s.url}/v1/completions`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const choice of r.body.choices) {
      const plp = choice.prompt_logprobs;
      assert.equal(plp.length, ONCE_IDS.length);
      assert.equal(plp[0], null);
      ONCE_IDS.slice(1).forEach((id, i) => {
        const k = i + 1;
        const entry = plp[k]!;
        const own = entry[String(id)]!;
        assert.ok(own, `position ${k} holds its prompt token ${id}`);
        assert.equal(own.logprob, choice.logprobs!.token_logprobs[k]);
        assert.equal(own.decoded_token, choice.logprobs!.tokens[k]);
        // The 3 alternatives take ranks 1..3 by place, most likely first; the prompt token is one of
        // them (and has its place) or a fourth entry, ranked below them by the count of tokens at
        // least as likely.
        const ranked = Object.entries(entry).sort(([, a], [, b]) => a.rank - b.rank);
        const alternatives = ranked.slice(0, 3);
        assert.deepEqual(alternatives.map(([, e]) => e.rank), [1, 2, 3], JSON.stringify(entry));
        for (let j = 1; j < 3; j++) assert.ok(alternatives[j]![1].logprob <= alternatives[j - 1]![1].logprob);
        if (alternatives.some(([t]) => t === String(id))) assert.equal(ranked.length, 3);
        else {
          assert.equal(ranked.length, 4);
          assert.equal(ranked[3]![0], String(id));
          assert.ok(own.rank > 3 && own.logprob <= alternatives[2]![1].logprob, JSON.stringify(own));
        }
        // The legacy echo logprobs still list only the 1 alternative they asked for.
        assert.equal(Object.keys(choice.logprobs!.top_logprobs[k]!).length, 1);
      });
    }
    assert.deepEqual(r.body.choices[0]!.prompt_logprobs, r.body.choices[1]!.prompt_logprobs);

    const messages = [{ role: 'user', content: 'Once upon a time' }];
    const chat = await postJson<ChatCompletion & { prompt_logprobs: (Ranked | null)[] }>(`${s.url}/v1/chat/completions`, { messages, max_tokens: 2, prompt_logprobs: 0 });
    assert.equal(chat.status, 200, JSON.stringify(chat.body));
    const tok = await postJson<{ count: number; tokens: number[] }>(`${s.url}/tokenize`, { messages });
    assert.equal(chat.body.prompt_logprobs.length, tok.body.count);
    assert.equal(chat.body.prompt_logprobs[0], null);
    chat.body.prompt_logprobs.slice(1).forEach((entry, i) => assert.deepEqual(Object.keys(entry!), [String(tok.body.tokens[i + 1])]));
    // Asked for nothing, given nothing.
    const plain = await postJson<Record<string, unknown>>(`${s.url}/v1/chat/completions`, { messages, max_tokens: 1 });
    assert.equal('prompt_logprobs' in plain.body, false);
  });

  it('answers chat completions with chat logprobs', async () => {
    const messages = [{ role: 'user', content: 'Once upon a time' }];
    const r = await postJson<ChatCompletion>(`${s.url}/v1/chat/completions`, { messages, max_tokens: 10, temperature: 0, logprobs: true, top_logprobs: 2 });
    assert.equal(r.status, 200);
    assert.match(r.body.id, /^chatcmpl-/);
    assert.equal(r.body.object, 'chat.completion');
    const c = r.body.choices[0]!;
    assert.equal(c.message!.role, 'assistant');
    assert.equal(typeof c.message!.content, 'string');
    assert.equal(c.finish_reason, 'length');
    const entries = c.logprobs!.content;
    assert.equal(entries.length, 10);
    for (const e of entries) {
      assert.equal(e.top_logprobs.length, 2);
      assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
    }
    assert.equal(entries.map((e) => e.token).join(''), c.message!.content);
    const tok = await postJson<{ count: number; tokens: number[] }>(`${s.url}/tokenize`, { messages });
    assert.equal(r.body.usage!.prompt_tokens, tok.body.count);
    assert.equal(r.body.usage!.completion_tokens, 10);

    // max_completion_tokens wins over max_tokens; text parts are joined.
    const parts = await postJson<ChatCompletion>(`${s.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Once upon' }, { type: 'text', text: 'a time' }] }],
      max_tokens: 50,
      max_completion_tokens: 3,
      temperature: 0,
    });
    assert.equal(parts.status, 200);
    assert.equal(parts.body.usage!.completion_tokens, 3);
    assert.equal(parts.body.choices[0]!.logprobs, null);
  });

  it('streams chat: the first delta carries the role, then content, finish, usage and [DONE]', async () => {
    const body = { messages: [{ role: 'system', content: 'A story.' }, { role: 'user', content: 'Lily went to the park' }], max_tokens: 12, temperature: 0 };
    const whole = await postJson<ChatCompletion>(`${s.url}/v1/chat/completions`, body);
    const res = await postStream(`${s.url}/v1/chat/completions`, { ...body, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200);
    const { chunks, done } = await collectSse<ChatCompletion>(res);
    assert.ok(done);
    assert.equal(chunks[0]!.object, 'chat.completion.chunk');
    assert.deepEqual(chunks[0]!.choices[0]!.delta, { role: 'assistant', content: '' });
    const last = chunks[chunks.length - 1]!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, whole.body.usage);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
    const content = chunks.slice(1, -1).map((c) => c.choices[0]!.delta!.content ?? '').join('');
    assert.equal(content, whole.body.choices[0]!.message!.content);
    assert.equal(chunks[chunks.length - 2]!.choices[0]!.finish_reason, 'length');
  });

  it('serves n choices with derived seeds and batched prompts', async () => {
    const body = { prompt: 'Once upon a time', max_tokens: 8, temperature: 1, seed: 42, n: 3 };
    const a = await postJson<Completion>(`${s.url}/v1/completions`, body);
    const b = await postJson<Completion>(`${s.url}/v1/completions`, body);
    assert.equal(a.status, 200);
    assert.deepEqual(a.body.choices.map((c) => c.index), [0, 1, 2]);
    assert.deepEqual(a.body.choices.map((c) => c.text), b.body.choices.map((c) => c.text));
    assert.deepEqual(a.body.usage, { prompt_tokens: 5, completion_tokens: 24, total_tokens: 29 });
    const seeded = await postJson<Completion>(`${s.url}/v1/completions`, { ...body, n: 1, seed: 43 });
    assert.equal(seeded.body.choices[0]!.text, a.body.choices[1]!.text, 'choice i uses seed + i');

    const batch = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: ['Once upon a time', [1, 403]], max_tokens: 4, temperature: 0 });
    assert.equal(batch.status, 200);
    assert.equal(batch.body.choices.length, 2);
    assert.deepEqual(batch.body.usage, { prompt_tokens: 7, completion_tokens: 8, total_tokens: 15 });
  });

  it('stops on stop strings, optionally keeping them', async () => {
    const r = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: ['Lily', 'zzz'] });
    assert.equal(r.body.choices[0]!.text, ', there was a little girl named ');
    assert.equal(r.body.choices[0]!.finish_reason, 'stop');
    assert.equal(r.body.choices[0]!.stop_reason, 'Lily');
    const kept = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: 'Lily', include_stop_str_in_output: true });
    assert.equal(kept.body.choices[0]!.text, ', there was a little girl named Lily');
  });

  it('tokenizes and detokenizes in vLLM shapes', async () => {
    const t = await postJson<{ count: number; max_model_len: number; tokens: number[]; token_strs?: string[] }>(`${s.url}/tokenize`, { prompt: 'Once upon a time', return_token_strs: true });
    assert.equal(t.status, 200);
    assert.deepEqual(t.body.tokens, ONCE_IDS);
    assert.equal(t.body.count, 5);
    assert.equal(t.body.max_model_len, 512);
    assert.equal(t.body.token_strs!.length, 5);
    const noBos = await postJson<{ tokens: number[] }>(`${s.url}/tokenize`, { prompt: 'Once upon a time', add_special_tokens: false });
    assert.deepEqual(noBos.body.tokens, ONCE_IDS.slice(1));
    const d = await postJson<{ prompt: string }>(`${s.url}/detokenize`, { tokens: ONCE_IDS.slice(1) });
    assert.equal(d.status, 200);
    assert.equal(d.body.prompt, s.assets.tokenizer.decode(ONCE_IDS.slice(1)));
  });

  it('lists calibrators with the JSON Schema of their config', async () => {
    const r = await getJson<{ object: string; data: { id: string; summary: string; config_schema: { type: string; properties?: Record<string, unknown> } }[] }>(`${s.url}/v1/calibrators`);
    assert.equal(r.status, 200);
    assert.equal(r.body.object, 'list');
    for (const c of r.body.data) {
      assert.equal(typeof c.summary, 'string');
      assert.equal(c.config_schema.type, 'object');
    }
    const entry = r.body.data.find((c) => c.id === 'act');
    assert.ok(entry, 'ACT is listed');
    for (const key of ['beta', 'threshold', 'heads']) assert.ok(entry.config_schema.properties?.[key], `ACT schema has ${key}`);
  });

  it('applies per-request calibration and reports it, also via vllm_xargs and in streams', async () => {
    const calibration = { act: { heads: { '2': [0, 1], '3': [4] } }, report: 'full' };
    const r = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 4, temperature: 0, calibration });
    assert.equal(r.status, 200);
    const report = r.body.calibration!.act as Record<string, unknown>;
    assert.equal(report.active, true);
    assert.equal(report.heads_calibrated, 3);
    assert.equal(typeof report.sinks_detected, 'number');
    assert.ok(report.prefill_sinks, 'report: "full" adds per-layer detail');

    const viaXargs = await postJson<Completion>(`${s.url}/v1/completions`, {
      prompt: 'Once upon a time',
      max_tokens: 4,
      temperature: 0,
      vllm_xargs: { calibration: JSON.stringify({ act: { heads: { '2': [0, 1], '3': [4] } } }) },
    });
    assert.equal(viaXargs.status, 200);
    assert.equal(viaXargs.body.choices[0]!.text, r.body.choices[0]!.text);
    assert.equal((viaXargs.body.calibration!.act as Record<string, unknown>).prefill_sinks, undefined, 'summary by default');

    const off = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 4, temperature: 0, calibration: { act: false } });
    assert.deepEqual(off.body.calibration, { act: { active: false } }, 'a calibrator turned off is reported, as every requested one is');

    const res = await postStream(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Lily' }], max_tokens: 3, stream: true, calibration });
    const { chunks } = await collectSse<ChatCompletion>(res);
    const final = chunks.find((c) => c.choices[0]?.finish_reason);
    assert.ok(final?.calibration?.act, 'the final chunk carries the report');
  });

  it('counts generated tokens as they stream, not only when a request finishes', async () => {
    const before = metricValue(await scrape(s.url), 'attune:generation_tokens_total')!;
    const res = await postStream(`${s.url}/v1/completions`, { prompt: 'Once', max_tokens: 200, ignore_eos: true, stream: true });
    const reader = readSse(res);
    for (let i = 0; i < 6; i++) await reader.events.next();
    const midway = metricValue(await scrape(s.url), 'attune:generation_tokens_total')!;
    for await (const _ of reader.events);
    assert.ok(midway - before >= 5, `counted ${midway - before} tokens while streaming`);
    assert.equal(metricValue(await scrape(s.url), 'attune:generation_tokens_total')! - before, 200);
  });

  it('does not count identity calibration settings as calibrated requests', async () => {
    const count = async () => metricValue(await scrape(s.url), 'attune:calibration_requests_total', { calibrator: 'act' })!;
    const before = await count();
    const r = await postJson<Completion>(`${s.url}/v1/completions`, { prompt: 'Once', max_tokens: 2, calibration: { act: { beta: 1 } } });
    assert.equal(r.status, 200);
    assert.equal(await count(), before);
    assert.deepEqual(r.body.calibration, { act: { active: false } }, 'the response says the calibrator did nothing');
  });

  it('is healthy and ready', async () => {
    assert.deepEqual((await getJson(`${s.url}/health`)).body, { status: 'ok' });
    const ready = await getJson(`${s.url}/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ready' });
  });

  it('exposes every metric with sensible values after the traffic above', async () => {
    const text = await scrape(s.url);
    const names = [
      'attune:time_to_first_token_seconds_count',
      'attune:inter_token_latency_seconds_count',
      'attune:e2e_request_latency_seconds_count',
      'attune:request_queue_time_seconds_count',
      'attune:request_prefill_time_seconds_count',
      'attune:request_decode_time_seconds_count',
      'attune:num_requests_running',
      'attune:num_requests_waiting',
      'attune:prompt_tokens_total',
      'attune:generation_tokens_total',
      'attune:kv_cache_usage_perc',
    ];
    for (const name of names) assert.notEqual(metricValue(text, name), undefined, `${name} is missing`);
    assert.ok(metricValue(text, 'attune:time_to_first_token_seconds_count')! >= 10);
    assert.ok(metricValue(text, 'attune:inter_token_latency_seconds_count')! > 100);
    assert.ok(metricValue(text, 'attune:prompt_tokens_total')! >= 50);
    assert.ok(metricValue(text, 'attune:generation_tokens_total')! >= 500);
    assert.ok(metricValue(text, 'attune:request_success_total', { finished_reason: 'length' })! >= 10);
    assert.ok(metricValue(text, 'attune:request_success_total', { finished_reason: 'stop' })! >= 2);
    assert.equal(metricValue(text, 'attune:num_requests_running'), 0);
    const usage = metricValue(text, 'attune:kv_cache_usage_perc')!;
    assert.ok(usage >= 0 && usage <= 1);
    for (const reason of ['overloaded', 'validation', 'aborted', 'timeout', 'internal']) {
      assert.equal(metricValue(text, 'attune:request_failure_total', { reason }), 0, `failure ${reason}`);
    }
    // vLLM's bucket lists, verbatim.
    assert.match(text, /attune:time_to_first_token_seconds_bucket\{le="2560"/);
    assert.match(text, /attune:e2e_request_latency_seconds_bucket\{le="7680"/);
    assert.match(text, /attune:inter_token_latency_seconds_bucket\{le="80"/);
    assert.ok(metricValue(text, 'attune:calibration_requests_total', { calibrator: 'act' })! >= 3);
    assert.ok(metricValue(text, 'attune:calibration_seconds_count', { calibrator: 'act' })! >= 3);
    assert.ok(metricValue(text, 'attune:act_sinks_detected_count')! >= 3);
    assert.equal(metricValue(text, 'attune:act_beta_count'), undefined, 'config echoes are not observations');
    for (const line of text.split('\n')) {
      if (line && !line.startsWith('#')) assert.match(line, /model_name="stories260K"/, line);
    }
  });
});
