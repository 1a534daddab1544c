/**
 * The soak's image mix for an LVLM (tiny-llava): chats with one or two images, with VHR off, on with
 * defaults, with explicit settings and full reports, with identity settings, or beside PAINT's
 * guidance (a prepass and a companion: three slots); text-only chats beside them; streaming or not; random disconnects, many of them early enough to land while a request's
 * images are encoded or its text-only prepass runs; invalid requests (VHR without an image, bad VHR
 * settings, a broken image) that must be 4xx; and canaries whose greedy or seeded answers must never
 * change. Each VHR request holds two KV slots until its prepass ends, so with a small batch they queue
 * behind each other and behind plain rows.
 */
import { Prng } from '../../test/helpers/prng.js';
import type { PlannedRequest } from './workload.js';

const PATH = '/v1/chat/completions';
const QUESTIONS = ['What is in the picture?', 'Describe it.', 'Is it bright?', 'Once upon a time'];

/** Calibration settings as a client sends them; `requested` says whether the answer carries a calibration object. */
const CALIBRATIONS: readonly [weight: number, fields: Record<string, unknown>, requested: boolean][] = [
  [25, {}, false],
  [25, { calibration: { vhr: true } }, true],
  [15, { calibration: { vhr: { alpha: 3, layers: [1, 4] }, report: 'full' } }, true],
  [15, { calibration: { vhr: { alpha: 0.5, distance: 'l2', outlier_guard: false } } }, true],
  [10, { vllm_xargs: { calibration: '{"vhr": {"outlier_filter": false}}' } }, true],
  [10, { calibration: { vhr: { alpha: 1 } } }, true],
  // A prepass and PAINT's guidance companion: three slots for one request.
  [8, { calibration: { vhr: true, paint: { guidance: true } } }, true],
];

export class VhrWorkload {
  private readonly r: Prng;
  private readonly invalid: readonly Record<string, unknown>[];
  private readonly canaries: readonly Record<string, unknown>[];

  /** `images`: data URLs of the model's fixture images. */
  constructor(seed: number, private readonly images: readonly string[]) {
    this.r = new Prng(seed);
    const [a, b] = images;
    this.invalid = [
      { messages: [{ role: 'user', content: 'Tell me a story.' }], calibration: { vhr: true } },
      { messages: this.turn('Hi', [a!]), calibration: { vhr: { alpha: 0 } } },
      { messages: this.turn('Hi', [a!]), calibration: { vhr: { layers: [7] } } },
      { messages: this.turn('Hi', [a!]), calibration: { vhr: { distance: 'cosine' } } },
      { messages: this.turn('Hi', ['data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA']), calibration: { vhr: true } },
    ];
    this.canaries = [
      { messages: this.turn('What is in the picture?', [a!]), max_tokens: 24, temperature: 0, calibration: { vhr: true } },
      { messages: this.turn('What is in the picture?', [a!]), max_tokens: 24, temperature: 0 },
      { messages: this.turn('Compare them.', [a!, b!]), max_tokens: 16, temperature: 0.8, seed: 5, calibration: { vhr: { alpha: 3 } } },
      { messages: this.turn('Describe it.', [b!]), max_tokens: 16, temperature: 1, seed: 9, n: 2, calibration: { vhr: { layers: [0, 2] } } },
    ];
  }

  private turn(text: string, urls: readonly string[]) {
    return [{ role: 'user', content: [...urls.map((url) => ({ type: 'image_url', image_url: { url } })), { type: 'text', text }] }];
  }

  next(): PlannedRequest {
    const r = this.r;
    if (r.chance(0.12)) {
      const i = r.int(0, this.canaries.length - 1);
      const fixed = this.canaries[i]! as { max_tokens: number; n?: number };
      const stream = r.chance(0.5);
      return {
        path: PATH, body: { ...fixed, ...(stream ? { stream: true } : {}) }, stream, choices: fixed.n ?? 1, maxTokens: fixed.max_tokens,
        includeUsage: false, calibrationRequested: 'calibration' in fixed, invalid: false, abort: null, determinismKey: `vhr canary ${i}`, client: { kind: 'normal' },
      };
    }
    if (r.chance(0.08)) {
      return { path: PATH, body: { max_tokens: 4, ...r.pick(this.invalid) }, stream: false, choices: 0, maxTokens: 0, includeUsage: false, calibrationRequested: false, invalid: true, abort: null, determinismKey: null, client: { kind: 'normal' } };
    }
    const stream = r.chance(0.5);
    const n = r.chance(0.1) ? 2 : 1;
    const maxTokens = r.weighted([[6, r.int(1, 16)], [3, r.int(17, 48)], [1, r.int(49, 120)]] as const);
    const [, calibration, calibrationRequested] = r.weighted(CALIBRATIONS.map((c) => [c[0], c] as const));
    const imageCount = r.weighted([[7, 1], [2, 2], [1, 0]] as const);
    // VHR needs an image; a text-only chat goes without calibration.
    const fields = imageCount === 0 ? {} : calibration;
    const urls = Array.from({ length: imageCount }, () => r.pick(this.images));
    const includeUsage = stream && r.chance(0.5);
    const body: Record<string, unknown> = {
      messages: this.turn(r.pick(QUESTIONS), urls),
      max_tokens: maxTokens,
      ...r.weighted<Record<string, unknown>>([[5, { temperature: 0 }], [3, { temperature: 0.8, top_p: 0.95, seed: r.int(0, 1_000) }], [2, { temperature: 1 }]]),
      ...fields,
      ...(n > 1 ? { n } : {}),
      ...(r.chance(0.2) ? { ignore_eos: true } : {}),
      ...(r.chance(0.15) ? { logprobs: true, top_logprobs: r.int(0, 3) } : {}),
      ...(stream ? { stream: true } : {}),
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    };
    let abort: PlannedRequest['abort'] = null;
    if (stream && r.chance(0.15)) abort = { afterEvents: r.int(1, 4) };
    // Early disconnects land while the images encode or the prepass runs.
    else if (!stream && r.chance(0.1)) abort = { afterMs: r.int(1, 30) };
    return { path: PATH, body, stream, choices: n, maxTokens, includeUsage, calibrationRequested: imageCount > 0 && calibrationRequested, invalid: false, abort, determinismKey: null, client: { kind: 'normal' } };
  }
}
