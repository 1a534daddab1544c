/**
 * What the soak sends: a seeded mix of completions and chat, streaming and not, with random
 * calibration settings (off, ACT from the profile, explicit heads, via vllm_xargs, full reports),
 * random sampling, some client disconnects, some invalid requests, and some slow or greedy clients:
 * bodies uploaded in slow pieces, streams read slowly, and large responses that are never read (the
 * server's write timeout must cut them; the client leaves after a while, as a disconnect).
 */
import { Prng } from '../../test/helpers/prng.js';

export type Endpoint = '/v1/completions' | '/v1/chat/completions';

export interface PlannedRequest {
  path: Endpoint;
  /** The JSON body, or raw text for a body that is not JSON. */
  body: Record<string, unknown> | string;
  stream: boolean;
  /** Choices a well-formed answer has (prompts x n). */
  choices: number;
  maxTokens: number;
  includeUsage: boolean;
  /** The response must carry a `calibration` object. */
  calibrationRequested: boolean;
  /** Must be refused with a 4xx (or 429 at the door). */
  invalid: boolean;
  /** Disconnect after this many SSE events, or after this many ms for a plain request; null: read it all. */
  abort: { afterEvents: number } | { afterMs: number } | null;
  /** Set for the canaries: greedy or seeded requests whose texts must not change all run long. */
  determinismKey: string | null;
  /**
   * How the client behaves: `slow-body` uploads its body in pieces with pauses; `slow-reader` pauses
   * between reads (below the server's write timeout); `non-reader` reads the status and nothing
   * more, then leaves after `holdMs` (a client disconnect).
   */
  client: { kind: 'normal' } | { kind: 'slow-body'; pieces: number; gapMs: number } | { kind: 'slow-reader'; pauseMs: number } | { kind: 'non-reader'; holdMs: number };
}

/** Large enough to outgrow loopback's socket buffers, so that an unread response has to be cut. */
const NON_READER_BODY = { prompt: [1], max_tokens: 500, n: 16, logprobs: 20, return_tokens_as_token_ids: true, temperature: 1, ignore_eos: true, stream: true };

const PROMPTS: readonly (string | number[])[] = [
  'Once upon a time',
  'Lily and Tom went to the park. They saw a big',
  'The little dog',
  'One day, a girl named Mia found a shiny',
  '',
  [1, 403, 407, 261, 378],
];

const MESSAGES: readonly { role: string; content: string }[][] = [
  [{ role: 'user', content: 'Lily went to the park' }],
  [{ role: 'system', content: 'A story.' }, { role: 'user', content: 'Tom had a red ball' }],
  [{ role: 'user', content: ' ' }],
];

/** Calibration settings as a client sends them, with whether they ask for a `calibration` object back. */
const CALIBRATIONS: readonly [weight: number, fields: Record<string, unknown>, requested: boolean][] = [
  [35, {}, false],
  [8, { calibration: { act: false } }, true],
  [20, { calibration: { act: true } }, true],
  [15, { calibration: { act: { heads: { 2: [0, 1] }, beta: 0.3 } } }, true],
  [8, { calibration: { act: { heads: { 3: [6, 7], 4: [4] }, threshold: 0.2 }, report: 'full' } }, true],
  [7, { vllm_xargs: { calibration: '{"act": true}' } }, true],
  [7, { vllm_xargs: { calibration: { act: { beta: 0.5 } } } }, true],
];

/** Refused with a 4xx: broken JSON, a bad calibration config, an unknown token, and so on. */
const INVALID: readonly [Endpoint, Record<string, unknown> | string][] = [
  ['/v1/completions', '{"prompt": "Once",'],
  ['/v1/completions', { prompt: 'Once', calibration: { act: { beta: 2 } } }],
  ['/v1/completions', { prompt: 'Once', calibration: { nope: true } }],
  ['/v1/completions', { prompt: [9999] }],
  ['/v1/completions', { prompt: 'Once', max_tokens: -1 }],
  ['/v1/completions', { prompt: 'Once', max_tokens: 10_000 }],
  ['/v1/completions', { prompt: 'Once', model: 'not-this-one' }],
  ['/v1/completions', { prompt: 'Once', temperature: 'hot' }],
  ['/v1/chat/completions', { messages: [] }],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], calibration: { act: { heads: { 0: [0] } } } }],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }] }],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], vllm_xargs: { calibration: '{broken' } }],
];

/**
 * A fixed set of deterministic requests, asked again and again: batching, calibration of other rows,
 * disconnects and errors around them must never change their tokens. Streaming or not is drawn per
 * request; it must not change them either.
 */
const CANARIES: readonly [Endpoint, Record<string, unknown>][] = [
  ['/v1/completions', { prompt: 'Once upon a time', max_tokens: 32, temperature: 0 }],
  ['/v1/completions', { prompt: 'Once upon a time', max_tokens: 32, temperature: 0, calibration: { act: true } }],
  ['/v1/completions', { prompt: 'The little dog', max_tokens: 32, temperature: 0, calibration: { act: { heads: { 2: [0, 1] }, beta: 0.3 } } }],
  ['/v1/completions', { prompt: 'Lily', max_tokens: 32, temperature: 0.8, seed: 7 }],
  ['/v1/completions', { prompt: [1, 403, 407], max_tokens: 24, temperature: 1, seed: 11, n: 2, calibration: { act: true } }],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Tom had a red ball' }], max_tokens: 24, temperature: 0 }],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Tom had a red ball' }], max_tokens: 24, temperature: 0, vllm_xargs: { calibration: '{"act": true}' } }],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Mia' }], max_tokens: 24, temperature: 1, seed: 3 }],
];

export class Workload {
  private readonly r: Prng;

  constructor(seed: number) {
    this.r = new Prng(seed);
  }

  next(): PlannedRequest {
    const r = this.r;
    if (r.chance(0.004)) {
      return {
        path: '/v1/completions',
        body: NON_READER_BODY,
        stream: true,
        choices: 16,
        maxTokens: 500,
        includeUsage: false,
        calibrationRequested: false,
        invalid: false,
        abort: null,
        determinismKey: null,
        client: { kind: 'non-reader', holdMs: r.int(4_000, 6_000) },
      };
    }
    if (r.chance(0.12)) {
      const i = r.int(0, CANARIES.length - 1);
      const [path, fixed] = CANARIES[i]!;
      const stream = r.chance(0.5);
      const c = fixed as { max_tokens: number; n?: number; calibration?: unknown; vllm_xargs?: unknown };
      return {
        path,
        body: { ...fixed, ...(stream ? { stream: true } : {}) },
        stream,
        choices: c.n ?? 1,
        maxTokens: c.max_tokens,
        includeUsage: false,
        calibrationRequested: c.calibration !== undefined || c.vllm_xargs !== undefined,
        invalid: false,
        abort: null,
        determinismKey: `canary ${i}`,
        client: { kind: 'normal' },
      };
    }
    if (r.chance(0.1)) {
      const [path, body] = r.pick(INVALID);
      return { path, body, stream: false, choices: 0, maxTokens: 0, includeUsage: false, calibrationRequested: false, invalid: true, abort: null, determinismKey: null, client: { kind: 'normal' } };
    }
    const chat = r.chance(0.4);
    const stream = r.chance(0.5);
    const n = r.chance(0.15) ? 2 : 1;
    const maxTokens = r.weighted([
      [6, r.int(1, 16)],
      [3, r.int(17, 64)],
      [1, r.int(65, 200)],
    ] as const);
    const [, calibration, calibrationRequested] = r.weighted(CALIBRATIONS.map((c) => [c[0], c] as const));
    const sampling = r.weighted<Record<string, unknown>>([
      [5, { temperature: 0 }],
      [3, { temperature: 0.8, top_p: 0.95, seed: r.int(0, 1_000) }],
      [2, { temperature: 1 }],
    ]);
    const includeUsage = stream && r.chance(0.5);
    const body: Record<string, unknown> = {
      max_tokens: maxTokens,
      ...sampling,
      ...calibration,
      ...(n > 1 ? { n } : {}),
      ...(r.chance(0.2) ? { ignore_eos: true } : {}),
      ...(r.chance(0.1) ? { stop: ['.', '!'] } : {}),
      ...(stream ? { stream: true } : {}),
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    };
    if (chat) {
      body.messages = r.pick(MESSAGES);
      if (r.chance(0.15)) Object.assign(body, { logprobs: true, top_logprobs: r.int(0, 5) });
    } else {
      body.prompt = r.pick(PROMPTS);
      if (r.chance(0.15)) body.logprobs = r.int(0, 5);
    }
    let abort: PlannedRequest['abort'] = null;
    if (stream && r.chance(0.15)) abort = { afterEvents: r.int(1, 4) };
    else if (!stream && r.chance(0.07)) abort = { afterMs: r.int(1, 40) };
    const client = r.weighted<PlannedRequest['client']>([
      [95, { kind: 'normal' }],
      [2, { kind: 'slow-body', pieces: r.int(2, 5), gapMs: r.int(10, 80) }],
      [3, stream && abort === null ? { kind: 'slow-reader', pauseMs: r.int(2, 20) } : { kind: 'normal' }],
    ]);
    return {
      path: chat ? '/v1/chat/completions' : '/v1/completions',
      body,
      stream,
      choices: n,
      maxTokens,
      includeUsage,
      calibrationRequested,
      invalid: false,
      abort,
      determinismKey: null,
      client,
    };
  }
}
