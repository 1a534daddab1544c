/**
 * The soak's PAINT workload, for a server on tiny-llava: chat requests with fixture images, most of
 * them PAINT with guidance (each holds two slots: its row and the image-free companion), some PAINT
 * without guidance, plain image and text-only rows beside them; streaming or not, n = 1 or 2, and
 * random client disconnects (mid-stream, or a timer on a plain request), which must free both slots
 * of a guided request. Invalid ones (PAINT without an image, a bad guidance value) must be 400s;
 * guided greedy canaries must give the same text all run long.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../../test/helpers/prng.js';
import type { PlannedRequest } from './workload.js';

const IMAGES = ['checker.png', 'gray_noise.png', 'half_bright.png', 'noise_two_bright.png', 'one_bright_patch.png'] as const;
const TEXTS = ['What is in the picture?', 'Describe the image in detail.', 'Is there a dog?', 'Tell me a story about it.'] as const;

type Message = { role: string; content: string | Record<string, unknown>[] };

/** Calibration fields as a client sends them. */
const CALIBRATIONS: readonly [weight: number, fields: Record<string, unknown>][] = [
  [30, { calibration: { paint: { guidance: true } } }],
  [12, { calibration: { paint: { guidance: { gamma: 2, cutoff: 0.05 }, edit_prefill: false }, report: 'full' } }],
  [10, { calibration: { paint: { guidance: true, alpha: 0.5, beta: 0.6, spatial_ratio: 0.25 } } }],
  [15, { calibration: { paint: true } }],
  [8, { calibration: { paint: { alpha: 0, beta: 0 } } }],
  [25, {}],
];

export class PaintWorkload {
  private readonly r: Prng;
  private readonly urls: Map<string, string>;

  constructor(seed: number, modelDir: string) {
    this.r = new Prng(seed);
    this.urls = new Map(IMAGES.map((f) => [f, `data:image/png;base64,${readFileSync(join(modelDir, 'images', f)).toString('base64')}`]));
  }

  private imageMessage(file: string, text: string): Message[] {
    return [{ role: 'user', content: [{ type: 'image_url', image_url: { url: this.urls.get(file)! } }, { type: 'text', text }] }];
  }

  next(): PlannedRequest {
    const r = this.r;
    const stream = r.chance(0.5);
    if (r.chance(0.1)) {
      // Guided greedy canaries: a companion beside whatever else runs must not change their tokens.
      const i = r.int(0, 1);
      const body = {
        messages: this.imageMessage(IMAGES[i * 2]!, TEXTS[i]!), max_tokens: 24, temperature: 0, ignore_eos: true,
        calibration: { paint: { guidance: true } }, ...(stream ? { stream: true } : {}),
      };
      return { path: '/v1/chat/completions', body, stream, choices: 1, maxTokens: 24, includeUsage: false, calibrationRequested: true, invalid: false, abort: null, determinismKey: `paint canary ${i}`, client: { kind: 'normal' } };
    }
    if (r.chance(0.08)) {
      const body = r.chance(0.5)
        ? { messages: [{ role: 'user', content: 'No picture here.' }], calibration: { paint: { guidance: true } } }
        : { messages: this.imageMessage(r.pick(IMAGES), 'Hi'), calibration: { paint: { guidance: { cutoff: 2 } } } };
      return { path: '/v1/chat/completions', body, stream: false, choices: 0, maxTokens: 0, includeUsage: false, calibrationRequested: false, invalid: true, abort: null, determinismKey: null, client: { kind: 'normal' } };
    }
    const [, calibration] = r.weighted(CALIBRATIONS.map((c) => [c[0], c] as const));
    const usesPaint = 'calibration' in calibration;
    const withImage = usesPaint || r.chance(0.7);
    const n = r.chance(0.15) ? 2 : 1;
    const maxTokens = r.weighted([[6, r.int(1, 16)], [3, r.int(17, 64)], [1, r.int(65, 160)]] as const);
    const includeUsage = stream && r.chance(0.5);
    const body: Record<string, unknown> = {
      messages: withImage ? this.imageMessage(r.pick(IMAGES), r.pick(TEXTS)) : [{ role: 'user', content: r.pick(TEXTS) }],
      max_tokens: maxTokens,
      ...r.weighted<Record<string, unknown>>([[5, { temperature: 0 }], [3, { temperature: 0.8, top_p: 0.95, seed: r.int(0, 1_000) }], [2, { temperature: 1 }]]),
      ...calibration,
      ...(n > 1 ? { n } : {}),
      ...(r.chance(0.3) ? { ignore_eos: true } : {}),
      ...(r.chance(0.15) ? { logprobs: true, top_logprobs: r.int(0, 3) } : {}),
      ...(stream ? { stream: true } : {}),
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    };
    let abort: PlannedRequest['abort'] = null;
    if (stream && r.chance(0.2)) abort = { afterEvents: r.int(1, 4) };
    else if (!stream && r.chance(0.1)) abort = { afterMs: r.int(1, 40) };
    return { path: '/v1/chat/completions', body, stream, choices: n, maxTokens, includeUsage, calibrationRequested: usesPaint, invalid: false, abort, determinismKey: null, client: { kind: 'normal' } };
  }
}
