/**
 * A soak as a test: a real server (warn-level logs, error lines collected) around a real engine
 * worker, `runSoak` over it, and the checks every soak makes: no violation, no error logged, and the
 * mix really ran (completions, client disconnects, refusals, calibrated requests, streams).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { formatSoakReport, runSoak, type SoakOptions, type SoakReport } from '../../load-tests/soak/soak.js';
import { startTestServer, type TestServer } from './test-server.js';

export interface SoakTest {
  title: string;
  seconds: number;
  /** A shared test model other than stories260K. */
  model?: string;
  maxBatch: number;
  concurrency: number;
  seed: number;
  workload?: () => SoakOptions['workload'];
  /** Further checks once the soak has passed the common ones. */
  then?: (report: SoakReport, server: TestServer) => Promise<void>;
}

/** Registers the server hooks and the soak's test in the current describe block. */
export function soakTest(t: SoakTest): void {
  let s: TestServer;
  const errorLogs: string[] = [];
  before(async () => {
    s = await startTestServer(
      { logLevel: 'warn', engine: { maxBatch: t.maxBatch } },
      {
        ...(t.model ? { model: t.model } : {}),
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

  it(t.title, { timeout: (t.seconds + 240) * 1000 }, async () => {
    const workload = t.workload?.();
    const report = await runSoak(s, { durationMs: t.seconds * 1000, concurrency: t.concurrency, seed: t.seed, ...(workload ? { workload } : {}) });
    console.log(formatSoakReport(report));
    assert.deepEqual(report.violations, []);
    assert.deepEqual(errorLogs, [], 'the server logged errors');
    assert.ok(report.completed > 0 && report.clientAborts > 0 && report.rejected > 0 && report.calibrated > 0 && report.streams > 0, 'the mix ran');
    await t.then?.(report, s);
  });
}
