/**
 * Requests whose every field is within its own limit but whose product is huge, and requests with
 * huge collections: refused with a 400 naming the field, before any generation starts and without
 * holding the event loop (a concurrent /health stays answered), sizes checked before elements.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/** The slowest /health answer while `during` runs, probing every few ms. */
async function worstHealthDuring<T>(url: string, during: () => Promise<T>): Promise<{ result: T; worstHealthMs: number }> {
  let worst = 0;
  let probing = true;
  const probe = (async () => {
    while (probing) {
      const t = performance.now();
      const r = await fetch(`${url}/health`);
      await r.arrayBuffer();
      worst = Math.max(worst, performance.now() - t);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  try {
    return { result: await during(), worstHealthMs: worst };
  } finally {
    probing = false;
    await probe;
  }
}

/** Sends `body` while probing /health; returns the answer and the slowest probe. */
async function sendBesideHealthProbe(url: string, path: string, body: Buffer): Promise<{ status: number; error: ReturnType<typeof assertErrorShape>; worstHealthMs: number }> {
  const { result, worstHealthMs } = await worstHealthDuring(url, async () => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array(body) });
    return { status: res.status, error: assertErrorShape(await res.json()) };
  });
  return { ...result, worstHealthMs };
}

/**
 * `prefix` + n items joined by commas + `suffix`, built in 64 KB pieces: one giant string per body
 * would leave hundreds of megabytes of garbage whose collection lands in the measured window.
 */
function jsonList(prefix: string, n: number, item: (i: number) => string, suffix: string): Buffer {
  const pieces: Buffer[] = [Buffer.from(prefix)];
  let part = '';
  for (let i = 0; i < n; i++) {
    part += (i ? ',' : '') + item(i);
    if (part.length >= 65_536) {
      pieces.push(Buffer.from(part));
      part = '';
    }
  }
  pieces.push(Buffer.from(part + suffix));
  return Buffer.concat(pieces);
}

describe('hostile sizes', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({});
  });
  after(async () => {
    await s.close();
  });

  it('refuses a response that would be too large with a 400 naming the fields, before generating', async () => {
    // The request: every field within its limit, 511 MB of logprobs in the answer.
    const prompts = Array.from({ length: 32 }, () => Array.from({ length: 511 }, (_, i) => 1 + (i % 500)));
    const steps = () => (s.engine.stats.running + s.engine.stats.waiting);
    const r = await postJson(`${s.url}/v1/completions`, {
      prompt: prompts,
      n: 16,
      echo: true,
      logprobs: 20,
      prompt_logprobs: 20,
      return_tokens_as_token_ids: true,
    });
    assert.equal(r.status, 400);
    const e = assertErrorShape(r.body);
    assert.equal(e.code, 'response_too_large');
    assert.equal(e.param, 'echo');
    for (const field of ['max_tokens', 'echo', 'prompt_logprobs', 'max_logprob_entries']) assert.ok(e.message.includes(field), `the message names ${field}: ${e.message}`);
    assert.equal(steps(), 0, 'nothing reached the engine');
    assert.equal(s.app.attune.admission.admitted, 0);

    // stories260K's context keeps chat under the default bound; a lower one shows chat's accounting.
    const low = await startTestServer({ limits: { maxLogprobEntries: 10_000 } }, { engine: s.engine });
    try {
      const chat = await postJson(`${low.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Hi' }], n: 16, logprobs: true, top_logprobs: 20, max_completion_tokens: 500 });
      assert.equal(chat.status, 400);
      assert.deepEqual([assertErrorShape(chat.body).code, assertErrorShape(chat.body).param], ['response_too_large', 'max_completion_tokens']);
    } finally {
      await low.close();
    }
    // Within the bound, the same shape of request is served.
    const ok = await postJson(`${s.url}/v1/completions`, { prompt: [1, 2, 3], n: 2, echo: true, logprobs: 5, prompt_logprobs: 5, max_tokens: 4 });
    assert.equal(ok.status, 200);
  });

  it('refuses huge collections as they arrive without holding /health', async () => {
    const cases: [string, string, Buffer][] = [
      ['1M calibration layer keys', '/v1/completions', jsonList('{"prompt":"x","calibration":{"act":{"heads":{', 1_000_000, (i) => `"${i}":[]`, '}}}}')],
      ['1.1M logit_bias keys', '/v1/completions', jsonList('{"prompt":"x","logit_bias":{', 1_100_000, (i) => `"${i}":1`, '}}')],
      ['8M prompt ids', '/v1/completions', jsonList('{"prompt":[', 8_000_000, () => '1', ']}')],
      ['a 4M-element head list', '/v1/completions', jsonList('{"prompt":"x","calibration":{"act":{"heads":{"2":[', 4_000_000, () => '0', ']}}}}')],
      ['8M ids to detokenize', '/detokenize', jsonList('{"tokens":[', 8_000_000, () => '1', ']}')],
      ['1M messages', '/v1/chat/completions', jsonList('{"messages":[', 1_000_000, () => '{}', ']}')],
    ];
    for (const [what, path, body] of cases) {
      // The bound is 100 ms. This machine is shared with other work, which now and then holds
      // a probe up on its own; the server's own stall would hold every try up (before this fix, for
      // seconds), so the best of three tries is what is checked.
      const tries = [];
      for (let t = 0; t < 3; t++) {
        const r = await sendBesideHealthProbe(s.url, path, body);
        assert.equal(r.status, 400, `${what}: ${r.error.message}`);
        assert.ok(r.error.param, `${what}: the refusal names a field`);
        // Refused from the body's shape as it arrived: nothing was parsed or validated element by element.
        assert.equal(r.error.code, 'body_too_complex', what);
        tries.push(r.worstHealthMs);
        if (r.worstHealthMs < 100) break;
      }
      assert.ok(Math.min(...tries) < 100, `${what}: /health took ${tries.map((t) => t.toFixed(0)).join(', ')} ms`);
    }
  });

  it('checks sizes before elements: the count is the error even when a late element is also bad', async () => {
    const cases: [string, string, unknown, string][] = [
      ['logit_bias', '/v1/completions', { prompt: 'x', logit_bias: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [String(i), i === 399 ? 500 : 1])) }, 'logit_bias'],
      ['prompt ids', '/v1/completions', { prompt: Array.from({ length: 600 }, (_, i) => (i === 599 ? -1 : 1)) }, 'prompt'],
      ['head list', '/v1/completions', { prompt: 'x', calibration: { act: { heads: { 2: Array.from({ length: 200 }, (_, i) => (i === 199 ? 'x' : 0)) } } } }, 'calibration.act.heads.2'],
      ['detokenize', '/detokenize', { tokens: Array.from({ length: 600 }, (_, i) => (i === 599 ? -1 : 1)) }, 'tokens'],
    ];
    for (const [what, path, body, param] of cases) {
      const r = await postJson(`${s.url}${path}`, body);
      assert.equal(r.status, 400, what);
      assert.equal(assertErrorShape(r.body).param, param, `${what}: ${assertErrorShape(r.body).message}`);
    }
  });
});
