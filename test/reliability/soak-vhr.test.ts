/**
 * The LVLM soak: mixed image chats with and without VHR (load-tests/soak/vhr-workload.ts) against a
 * real server and engine worker serving tiny-llava with a small batch, so VHR requests and their
 * text-only prepasses queue, stream, disconnect (many while their images encode or their prepass
 * runs), fail validation and run beside plain rows and PAINT's guided ones. Every violation the soak
 * finds (a malformed answer, counters that disagree with what clients saw, a canary whose tokens
 * changed, a leaked slot, memory growth past its bound) fails the test. ATTUNE_SOAK_VHR_SECONDS
 * shortens or lengthens it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe } from 'node:test';
import { VhrWorkload } from '../../load-tests/soak/vhr-workload.js';
import { soakTest } from '../helpers/soak-suite.js';
import { TINY_LLAVA_IMAGES, tinyLlavaImagePath } from '../helpers/tiny-llava.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';

const SECONDS = Number(process.env.ATTUNE_SOAK_VHR_SECONDS ?? 25);
const SEED = 20_241_211;

describe('soak: tiny-llava with VHR', () => {
  const images = TINY_LLAVA_IMAGES.map((f) => `data:image/png;base64,${readFileSync(tinyLlavaImagePath(f)).toString('base64')}`);
  soakTest({
    title: `serves ${SECONDS} s of image chats with VHR, disconnects and bad requests, and leaks nothing`,
    seconds: SECONDS,
    model: 'tiny-llava',
    maxBatch: 4,
    concurrency: 8,
    seed: SEED,
    workload: () => new VhrWorkload(SEED, images),
    async then(_report, server) {
      const metrics = await scrape(server.url);
      assert.ok((metricValue(metrics, 'attune:calibration_requests_total', { calibrator: 'vhr' }) ?? 0) > 0, 'VHR requests completed');
      assert.ok((metricValue(metrics, 'attune:request_prepass_time_seconds_count') ?? 0) > 0, 'prepasses ran');
    },
  });
});
