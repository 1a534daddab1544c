/**
 * Image-chat fuzz against a real server serving an LVLM (tiny-llava): a seeded mix of real images
 * (PNG, JPEG, WebP; RGB, gray, RGBA, CMYK; random sizes, EXIF orientations), byte-mutated and
 * truncated images, hand-built adversarial headers (bombs, wrong types, bad base64), several images
 * per request, placeholder text injected into messages, streaming, and disconnects mid-request.
 * Afterwards: no 5xx, every refusal in the OpenAI shape naming an image field (or messages), every
 * known-good request answered, nothing left in the engine or admission, and a greedy image chat
 * still answers with the same tokens.
 *
 * CI runs 300 requests from one seed; ATTUNE_FUZZ_FULL=1 (`npm run fuzz`) runs 3,000 over three.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { assertErrorShape, postJson } from '../helpers/http.js';
import { Prng } from '../helpers/prng.js';
import type { ChatCompletion } from '../helpers/openai-types.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { tinyLlavaImagePath, TINY_LLAVA_IMAGES } from '../helpers/tiny-llava.js';
import { waitFor } from '../helpers/wait.js';
import { adversarialImageUrl, dataUrl } from './images.js';

const FULL = process.env.ATTUNE_FUZZ_FULL === '1';
const SEEDS = FULL ? [0x11a7a, 2, 3] : [0x11a7a];
const PER_SEED = FULL ? 1000 : 300;
const CONCURRENCY = 8;
const MAX_IMAGE_BYTES = 256 * 1024;

/** 'ok': must be answered; 'reject': must be a 4xx; 'either': any non-5xx (a mutation may or may not break an image). */
type Expect = 'ok' | 'reject' | 'either';

async function realImage(r: Prng): Promise<Buffer> {
  const width = r.int(1, 96), height = r.int(1, 96);
  const channels = r.pick([3, 4] as const);
  const raw = Buffer.from(Array.from({ length: width * height * channels }, () => r.int(0, 255)));
  let img = sharp(raw, { raw: { width, height, channels } });
  if (r.chance(0.2)) img = img.grayscale();
  const format = r.pick(['png', 'jpeg', 'webp'] as const);
  if (format === 'jpeg') {
    if (r.chance(0.2)) img = img.toColourspace('cmyk');
    img = img.jpeg({ quality: r.int(30, 95) });
  } else img = format === 'png' ? img.png() : img.webp();
  if (r.chance(0.2)) img = img.withMetadata({ orientation: r.int(1, 8) });
  return img.toBuffer();
}

function mutate(r: Prng, bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  if (r.chance(0.4)) return b.subarray(0, r.int(0, b.length - 1));
  for (let i = r.int(1, 8); i > 0; i--) b[r.int(0, b.length - 1)] = r.int(0, 255);
  return b;
}

const mimeOf = (b: Buffer): string => (b[0] === 0x89 ? 'image/png' : b[0] === 0xff ? 'image/jpeg' : 'image/webp');

async function imageUrl(r: Prng, fixtures: Buffer[]): Promise<{ url: string; expect: Expect }> {
  switch (r.weighted([[3, 'fixture'], [4, 'real'], [3, 'mutated'], [3, 'adversarial']] as const)) {
    case 'fixture':
      return { url: dataUrl('image/png', r.pick(fixtures)), expect: 'ok' };
    case 'real': {
      const b = await realImage(r);
      return { url: dataUrl(mimeOf(b), b), expect: 'ok' };
    }
    case 'mutated': {
      const b = mutate(r, r.chance(0.5) ? r.pick(fixtures) : await realImage(r));
      return { url: dataUrl(r.chance(0.9) ? mimeOf(b) : 'image/png', b), expect: 'either' };
    }
    case 'adversarial':
      // Headers without pixels, wrong types, bombs, bad base64, remote URLs with fetching off.
      return { url: adversarialImageUrl(r, MAX_IMAGE_BYTES), expect: 'reject' };
  }
}

interface Case {
  body: Record<string, unknown>;
  expect: Expect;
  disconnect: boolean;
}

async function makeCase(r: Prng, fixtures: Buffer[]): Promise<Case> {
  const n = r.weighted([[2, 0], [10, 1], [3, 2], [1, 3], [1, 9]] as const);
  const parts: unknown[] = [];
  let expect: Expect = 'ok';
  for (let i = 0; i < n; i++) {
    const { url, expect: e } = await imageUrl(r, fixtures);
    parts.push({ type: 'image_url', image_url: r.chance(0.8) ? { url } : url });
    if (e === 'reject') expect = 'reject';
    else if (e === 'either' && expect === 'ok') expect = 'either';
  }
  if (n > 8) expect = 'reject';
  const text = r.pick(['What is this?', 'Describe it in detail.', '', 'Look: <image>', '<image><image>', 'é'.repeat(r.int(0, 40))]);
  if (text.includes('<image>')) expect = 'reject';
  const insertAt = r.int(0, parts.length);
  parts.splice(insertAt, 0, { type: 'text', text });
  const body: Record<string, unknown> = {
    messages: [{ role: 'user', content: parts }],
    max_tokens: r.int(0, 12),
    temperature: r.pick([0, 0.7, 1.5]),
    ...(r.chance(0.3) ? { stream: true } : {}),
    ...(r.chance(0.2) ? { logprobs: true, top_logprobs: r.int(0, 5) } : {}),
    ...(r.chance(0.2) ? { return_token_ids: true } : {}),
    ...(r.chance(0.1) ? { n: r.int(1, 3) } : {}),
  };
  return { body, expect, disconnect: r.chance(0.05) };
}

describe('LVLM image-chat fuzz', () => {
  let s: TestServer;
  let fixtures: Buffer[];
  const errorLogs: string[] = [];
  const probe = {
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: '' } }, { type: 'text', text: 'What is it?' }] }],
    max_tokens: 12, temperature: 0, return_token_ids: true,
  };

  before(async () => {
    fixtures = TINY_LLAVA_IMAGES.map((f) => readFileSync(tinyLlavaImagePath(f)));
    probe.messages[0]!.content[0] = { type: 'image_url', image_url: { url: dataUrl('image/png', fixtures[2]!) } };
    s = await startTestServer(
      { logLevel: 'info', requestTimeoutSeconds: 60, limits: { maxImageBytes: MAX_IMAGE_BYTES, maxImagePixels: 1 << 20 } },
      { model: 'tiny-llava', logStream: { write: (line: string) => void (/"level":(50|60)/.test(line) && errorLogs.push(line.slice(0, 600))) } },
    );
  });
  after(async () => {
    await s.close();
  });

  it(`survives ${SEEDS.length * PER_SEED} image chats and still answers the same`, { timeout: 30 * 60_000 }, async () => {
    const greedy = async () => {
      const res = await postJson<ChatCompletion & { choices: { token_ids: number[] }[] }>(`${s.url}/v1/chat/completions`, probe);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.choices[0]!.token_ids;
    };
    const before = await greedy();
    const problems: string[] = [];
    const statuses: Record<number, number> = {};
    for (const seed of SEEDS) {
      const r = new Prng(seed);
      let next = 0;
      const worker = async () => {
        while (next < PER_SEED) {
          const seq = next++;
          const c = await makeCase(r, fixtures);
          const controller = new AbortController();
          if (c.disconnect) setTimeout(() => controller.abort(), r.int(0, 30));
          let status: number;
          let text: string;
          try {
            const res = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(c.body), signal: controller.signal });
            status = res.status;
            text = await res.text();
          } catch (e) {
            if (c.disconnect) continue;
            throw e;
          }
          statuses[status] = (statuses[status] ?? 0) + 1;
          const where = `seed ${seed} #${seq} (${c.expect})`;
          if (status >= 500) problems.push(`${where}: ${status} ${text.slice(0, 300)}`);
          else if (c.expect === 'ok' && status !== 200) problems.push(`${where}: refused ${status} ${text.slice(0, 300)}`);
          else if (c.expect === 'reject' && status < 400) problems.push(`${where}: accepted`);
          else if (status >= 400) {
            const e = assertErrorShape(JSON.parse(text));
            if (!e.param || !/^messages(\.|$)/.test(e.param)) problems.push(`${where}: refusal names ${e.param}: ${e.message}`);
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    }
    console.log(`lvlm fuzz: ${SEEDS.length * PER_SEED} requests; status ${JSON.stringify(statuses)}; problems ${problems.length}`);
    assert.deepEqual(problems.slice(0, 10), []);
    assert.ok((statuses[200] ?? 0) > PER_SEED / 4, 'a good share of the requests were served');
    assert.deepEqual(errorLogs, [], 'the server logged errors');
    await waitFor(() => s.engine.stats.slotsInUse === 0 && s.engine.inFlight === 0, 'the engine to go idle', 60_000);
    await waitFor(() => s.app.attune.admission.admitted === 0 && s.app.attune.lifecycle.activeGenerations === 0, 'admission to be released', 60_000);
    assert.deepEqual(await greedy(), before, 'greedy tokens changed after the fuzz');
  });
});
