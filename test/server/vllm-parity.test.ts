/**
 * What a vLLM or OpenAI SDK user expects, checked against a real server: stop_reason, min_tokens,
 * legacy top_logprobs, distinct seeds for n choices, calibration reports, vLLM's extra fields (honoured
 * or refused, never ignored), success counting, the new vLLM metric stems, and the official OpenAI
 * Node SDK's retry behaviour on attune's statuses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import type { Completion } from '../helpers/openai-types.js';
import { startEngine, startTestServer, type TestServer } from '../helpers/test-server.js';

const EOS = 2;

interface Choice {
  index: number;
  text: string;
  finish_reason: string;
  stop_reason: string | number | null;
  logprobs: { tokens: string[]; top_logprobs: Record<string, number>[] } | null;
}

describe('vLLM and OpenAI SDK parity', () => {
  let engine: EngineClient;
  let s: TestServer;
  before(async () => {
    engine = await startEngine({ maxBatch: 2 });
    s = await startTestServer({ queue: { retryAfterSeconds: 0 } }, { engine });
  });
  after(async () => {
    await s.close();
    await engine.close();
  });
  const complete = async (body: Record<string, unknown>) => {
    const r = await postJson<{ choices: Choice[]; id: string; usage: { completion_tokens: number }; calibration?: Record<string, unknown> }>(`${s.url}/v1/completions`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  it('sets stop_reason to null at EOS and to the id for a request stop token', async () => {
    const eos = await complete({ prompt: 'Once upon a time', max_tokens: 5, logit_bias: { [EOS]: 100 } });
    assert.deepEqual([eos.choices[0]!.finish_reason, eos.choices[0]!.stop_reason], ['stop', null]);
    const own = await complete({ prompt: 'Once upon a time', max_tokens: 5, logit_bias: { 100: 100 }, stop_token_ids: [100] });
    assert.deepEqual([own.choices[0]!.finish_reason, own.choices[0]!.stop_reason], ['stop', 100]);
  });

  it('honours min_tokens: EOS and stop strings wait, and min_tokens may not exceed max_tokens', async () => {
    const r = await complete({ prompt: 'Once upon a time', max_tokens: 20, min_tokens: 6, logit_bias: { [EOS]: 100 } });
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    assert.equal(r.usage.completion_tokens, 7, 'six tokens, then EOS');
    // Greedy: ", there was a little girl" ; "there" ends within the first min_tokens tokens.
    const plain = await complete({ prompt: 'Once upon a time', max_tokens: 6, temperature: 0 });
    assert.match(plain.choices[0]!.text, /^, there/);
    const stopped = await complete({ prompt: 'Once upon a time', max_tokens: 6, temperature: 0, stop: ['there'], min_tokens: 6 });
    assert.equal(stopped.choices[0]!.text, plain.choices[0]!.text, 'a stop string within the first min_tokens tokens does not end the choice');
    const early = await complete({ prompt: 'Once upon a time', max_tokens: 6, temperature: 0, stop: ['there'] });
    assert.equal(early.choices[0]!.text, ', ', 'without min_tokens the same stop string ends it');
    const bad = await postJson(`${s.url}/v1/completions`, { prompt: 'x', max_tokens: 3, min_tokens: 4 });
    assert.equal(bad.status, 400);
    assert.equal(assertErrorShape(bad.body).param, 'min_tokens');
  });

  it('writes legacy top_logprobs with the token itself: logprobs 0 gives it alone, N gives up to N + 1', async () => {
    const zero = await complete({ prompt: 'Once upon a time', max_tokens: 6, temperature: 1, seed: 3, logprobs: 0 });
    const lp0 = zero.choices[0]!.logprobs!;
    lp0.top_logprobs.forEach((top, k) => assert.deepEqual(Object.keys(top), [lp0.tokens[k]]));
    const two = await complete({ prompt: 'Once upon a time', max_tokens: 6, temperature: 1, seed: 3, logprobs: 2, echo: true, return_tokens_as_token_ids: true });
    const lp2 = two.choices[0]!.logprobs!;
    lp2.top_logprobs.forEach((top, k) => {
      if (top === null) return;
      const keys = Object.keys(top);
      assert.equal(keys[0], lp2.tokens[k], 'the token itself comes first');
      assert.ok(keys.length === 2 || keys.length === 3, `${keys.length} entries`);
    });
  });

  it('gives n choices of a seed near 2^53 distinct seeds', async () => {
    const r = await complete({ prompt: [1], max_tokens: 24, temperature: 2, n: 16, seed: 2 ** 53 - 8 });
    assert.equal(new Set(r.choices.map((c) => c.text)).size, 16);
    // The first choice keeps the seed itself: it is the n = 1 answer.
    const single = await complete({ prompt: [1], max_tokens: 24, temperature: 2, seed: 2 ** 53 - 8 });
    assert.equal(r.choices[0]!.text, single.choices[0]!.text);
  });

  it('reports a calibrator turned off by name, per choice when there are several', async () => {
    const one = await complete({ prompt: 'Hi', max_tokens: 2, calibration: { act: false } });
    assert.deepEqual(one.calibration, { act: { active: false } });
    const several = await complete({ prompt: ['Hi', 'Lily'], n: 2, max_tokens: 2, calibration: { act: false } });
    assert.deepEqual(several.calibration, { act: Array.from({ length: 4 }, () => ({ active: false })) });
    const on = await complete({ prompt: ['Hi', 'Lily'], n: 2, max_tokens: 2, calibration: { act: { heads: { 2: [0] } } } });
    const reports = (on.calibration as { act: { active: boolean }[] }).act;
    assert.equal(reports.length, 4);
    assert.ok(reports.every((r) => r.active === true));
  });

  it('writes BOS and EOS as <s> and </s> in /detokenize and in echoed tokens, as vLLM users see them', async () => {
    const ids = [1, 403, 407, 261, 378];
    const d = await postJson<{ prompt: string }>(`${s.url}/detokenize`, { tokens: [...ids, EOS] });
    assert.equal(d.body.prompt, '<s>Once upon a time</s>');
    const echoed = await complete({ prompt: ids, max_tokens: 1, echo: true, logprobs: 1 });
    assert.deepEqual(echoed.choices[0]!.logprobs!.tokens.slice(0, 2), ['<s>', ' Once']);
  });

  it('honours or refuses vLLM fields it does not otherwise act on', async () => {
    const named = await complete({ prompt: 'Hi', max_tokens: 1, request_id: 'my-req-1', priority: 0, cache_salt: 'tenant-a' });
    assert.equal(named.id, 'cmpl-my-req-1');
    for (const [field, value] of [['priority', 1], ['kv_transfer_params', { do_remote_decode: true }], ['structural_tag', '{}'], ['guided_decoding_backend', 'xgrammar'], ['prompt_embeds', 'AAAA']] as const) {
      const r = await postJson(`${s.url}/v1/completions`, { prompt: 'Hi', max_tokens: 1, [field]: value });
      assert.equal(r.status, 400, field);
      assert.deepEqual([assertErrorShape(r.body).param, assertErrorShape(r.body).code], [field, 'unsupported_parameter']);
    }
    const chat = await postJson<{ id: string }>(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1, request_id: 'c-7' });
    assert.equal(chat.body.id, 'chatcmpl-c-7');
  });

  it('counts no successes for a request that failed, whatever some of its sequences had finished', async () => {
    const t = await startTestServer({ requestTimeoutSeconds: 0.4 }, { engine });
    try {
      const success = async () => {
        const m = await scrape(t.url);
        return (metricValue(m, 'attune:request_success_total', { finished_reason: 'length' }) ?? 0) + (metricValue(m, 'attune:request_success_total', { finished_reason: 'stop' }) ?? 0);
      };
      // The long prompt's choices finish in a few steps; the one-token prompt's 16 need 500 tokens each,
      // two at a time, well past the deadline.
      const long = Array.from({ length: 500 }, (_, i) => 3 + (i % 400));
      const r = await postJson(`${t.url}/v1/completions`, { prompt: [long, [1]], n: 16, ignore_eos: true });
      assert.equal(r.status, 408);
      assert.equal(r.headers.get('x-should-retry'), 'false');
      assert.equal(await success(), 0);
      assert.equal(metricValue(await scrape(t.url), 'attune:request_failure_total', { reason: 'timeout' }), 1);
    } finally {
      await t.close();
    }
  });

  it('exports vLLM\'s per-request and per-step histograms', async () => {
    await complete({ prompt: ['Once upon a time', 'Lily'], n: 3, max_tokens: 4, ignore_eos: true });
    const m = await scrape(s.url);
    for (const name of [
      'attune:request_prompt_tokens',
      'attune:request_generation_tokens',
      'attune:request_params_max_tokens',
      'attune:request_max_num_generation_tokens',
      'attune:request_params_n',
      'attune:request_inference_time_seconds',
      'attune:request_time_per_output_token_seconds',
      'attune:iteration_tokens_total',
    ]) {
      assert.ok((metricValue(m, `${name}_count`) ?? 0) > 0, `${name} has observations`);
    }
    assert.equal(metricValue(m, 'attune:request_params_n_bucket', { le: '5' })! - metricValue(m, 'attune:request_params_n_bucket', { le: '2' })!, 2, 'n = 3, once per prompt');
    assert.ok(m.includes('attune:request_prompt_tokens_bucket{le="500"'), 'token buckets follow the 1-2-5 series up to the context');
  });

  describe('the official OpenAI Node SDK', () => {
    it('does not retry a generation that ran out of time, and passes calibration as an extra body field', async () => {
      const t = await startTestServer({ requestTimeoutSeconds: 0.05, queue: { retryAfterSeconds: 0 } }, { engine });
      try {
        const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 2 });
        await assert.rejects(
          client.completions.create({ model: 'stories260K', prompt: [1], max_tokens: 500, n: 8, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming),
          (e: unknown) => e instanceof OpenAI.APIError && e.status === 408,
        );
        assert.equal(metricValue(await scrape(t.url), 'attune:request_failure_total', { reason: 'timeout' }), 1, 'one attempt, no retries');
      } finally {
        await t.close();
      }
      const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused' });
      const c = (await client.completions.create({
        model: 'stories260K',
        prompt: 'Once upon a time',
        max_tokens: 3,
        temperature: 0,
        // attune's extra field: the TypeScript SDK sends unknown fields as they are.
        calibration: { act: true },
      } as OpenAI.CompletionCreateParamsNonStreaming)) as unknown as Completion & { calibration: Record<string, unknown> };
      assert.equal(c.choices[0]!.text, ', there was');
      assert.ok(c.calibration.act);
    });

    it('retries what a retry can fix (a 503 while draining) and not a client mistake (400)', async () => {
      const d = await startTestServer({ queue: { retryAfterSeconds: 0 } }, { engine });
      try {
        const client = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: 'unused', maxRetries: 2 });
        const failures = async (reason: string) => metricValue(await scrape(d.url), 'attune:request_failure_total', { reason });
        await assert.rejects(client.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: 1, temperature: -1 }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 400);
        assert.equal(await failures('validation'), 1, 'a 400 is not retried');
        d.app.attune.lifecycle.startDrain();
        await assert.rejects(client.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: 1 }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 503);
        assert.equal(await failures('overloaded'), 3, 'a 503: the first try and two retries');
      } finally {
        await d.app.close();
      }
    });
  });
});
