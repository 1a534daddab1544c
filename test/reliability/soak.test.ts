/**
 * The CI soak: 60 seconds of mixed traffic (load-tests/soak) against a real server with a small batch,
 * so requests queue, stream, disconnect, fail validation, upload and read slowly, leave responses
 * unread, and run calibrated side by side. Every
 * violation the soak finds (a malformed answer, counters that disagree with what clients saw, a
 * canary whose tokens changed, a leaked slot, memory growth past its bound) fails the test.
 * ATTUNE_SOAK_SECONDS shortens or lengthens it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatSoakReport, runSoak } from '../../load-tests/soak/soak.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const SECONDS = Number(process.env.ATTUNE_SOAK_SECONDS ?? 60);

describe('soak', () => {
  let s: TestServer;
  const errorLogs: string[] = [];
  before(async () => {
    s = await startTestServer(
      // A short write timeout, so that the workload's non-reading clients are cut while the run lasts.
      { logLevel: 'warn', engine: { maxBatch: 4 }, http: { writeTimeoutSeconds: 2 } },
      {
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

  it(`serves ${SECONDS} s of mixed traffic with disconnects and bad requests, and leaks nothing`, { timeout: (SECONDS + 240) * 1000 }, async () => {
    const report = await runSoak(s, { durationMs: SECONDS * 1000, concurrency: 8, seed: 20_240_605 });
    console.log(formatSoakReport(report));
    assert.deepEqual(report.violations, []);
    assert.deepEqual(errorLogs, [], 'the server logged errors');
    assert.ok(report.completed > 0 && report.clientAborts > 0 && report.rejected > 0 && report.calibrated > 0 && report.streams > 0, 'the mix ran');
    assert.ok(report.slowClients.slowBody > 0 && report.slowClients.slowReader > 0 && report.slowClients.nonReader > 0, 'slow and non-reading clients ran');
  });
});
