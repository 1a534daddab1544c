/**
 * The LVLM soak: mixed image chats with and without VHR (load-tests/soak/vhr-workload.ts) against a
 * real server and engine worker serving tiny-llava with a small batch, so VHR requests and their
 * text-only prepasses queue, stream, disconnect (many while their images encode or their prepass
 * runs), fail validation and run beside plain rows. Every violation the soak finds (a malformed answer,
 * counters that disagree with what clients saw, a canary whose tokens changed, a leaked slot, memory
 * growth past its bound) fails the test. ATTUNE_SOAK_VHR_SECONDS shortens or lengthens it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { formatSoakReport, runSoak } from '../../load-tests/soak/soak.js';
import { VhrWorkload } from '../../load-tests/soak/vhr-workload.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { TINY_LLAVA_IMAGES, tinyLlavaImagePath } from '../helpers/tiny-llava.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';

const SECONDS = Number(process.env.ATTUNE_SOAK_VHR_SECONDS ?? 25);
const SEED = 20_241_211;

describe('soak: tiny-llava with VHR', () => {
  let s: TestServer;
  const errorLogs: string[] = [];
  before(async () => {
    s = await startTestServer(
      { logLevel: 'warn', engine: { maxBatch: 4 } },
      {
        model: 'tiny-llava',
        logStream: {
          write(line: string) {
            if (/"level":(50|60)/.test(line)) errorLogs.push(line.slice(0, 400));
          },
        },
      },
    );
  });
  after(async () => {
    await s.close();
  });

  it(`serves ${SECONDS} s of image chats with VHR, disconnects and bad requests, and leaks nothing`, { timeout: (SECONDS + 240) * 1000 }, async () => {
    const images = TINY_LLAVA_IMAGES.map((f) => `data:image/png;base64,${readFileSync(tinyLlavaImagePath(f)).toString('base64')}`);
    const before = await scrape(s.url);
    const report = await runSoak(s, { durationMs: SECONDS * 1000, concurrency: 8, seed: SEED, workload: new VhrWorkload(SEED, images) });
    console.log(formatSoakReport(report));
    assert.deepEqual(report.violations, []);
    assert.deepEqual(errorLogs, [], 'the server logged errors');
    assert.ok(report.completed > 0 && report.clientAborts > 0 && report.rejected > 0 && report.calibrated > 0 && report.streams > 0, 'the mix ran');
    const after = await scrape(s.url);
    const delta = (name: string, labels: Record<string, string> = {}) => (metricValue(after, name, labels) ?? 0) - (metricValue(before, name, labels) ?? 0);
    assert.ok(delta('attune:calibration_requests_total', { calibrator: 'vhr' }) > 0, 'VHR requests completed');
    assert.ok(delta('attune:request_prepass_time_seconds_count') > 0, 'prepasses ran');
  });
});
