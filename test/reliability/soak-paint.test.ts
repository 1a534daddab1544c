/**
 * The PAINT soak: guided PAINT traffic on tiny-llava (load-tests/soak/paint-workload.ts) against a
 * real server with a small batch, so guided requests (two slots each) queue, stream and are cut off
 * by their clients beside plain image and text rows. Every violation the soak finds (a malformed
 * answer, counters that disagree with the clients, a guided canary whose tokens changed, a leaked slot
 * or generation, memory growth past its bound) fails the test. ATTUNE_SOAK_PAINT_SECONDS sets the length.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatSoakReport, runSoak } from '../../load-tests/soak/soak.js';
import { PaintWorkload } from '../../load-tests/soak/paint-workload.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { modelsDir } from '../helpers/models-dir.js';

const SECONDS = Number(process.env.ATTUNE_SOAK_PAINT_SECONDS ?? 30);
const SEED = 20_241_212;

describe('soak: guided PAINT on tiny-llava', () => {
  let s: TestServer;
  const errorLogs: string[] = [];
  before(async () => {
    s = await startTestServer(
      { logLevel: 'warn', engine: { maxBatch: 5 } },
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

  it(`serves ${SECONDS} s of guided PAINT with disconnects and bad requests, and leaks nothing`, { timeout: (SECONDS + 240) * 1000 }, async () => {
    const workload = new PaintWorkload(SEED, join(modelsDir, 'tiny-llava'));
    const report = await runSoak(s, { durationMs: SECONDS * 1000, concurrency: 6, seed: SEED, workload });
    console.log(formatSoakReport(report));
    assert.deepEqual(report.violations, []);
    assert.deepEqual(errorLogs, [], 'the server logged errors');
    assert.ok(report.completed > 0 && report.clientAborts > 0 && report.rejected > 0 && report.calibrated > 0 && report.streams > 0, 'the mix ran');
  });
});
