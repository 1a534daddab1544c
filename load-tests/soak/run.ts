/**
 * `npm run soak -- --minutes N [--concurrency C] [--seed S] [--max-batch B] [--workload stories|paint] [--json]`:
 * the soak (soak.ts) against an in-process server around a real engine worker serving stories260K
 * (or, with `--workload paint`, tiny-llava with guided PAINT traffic: paint-workload.ts) from the
 * shared models directory (ATTUNE_MODELS_DIR, else ../shared/models). Prints progress to stderr and
 * the report to stdout; exits 1 if anything was violated.
 *
 * In process, not a child: the soak reads the engine's slot count and the server's admission state
 * directly, and the process RSS it watches includes the engine worker's KV cache and ORT arenas.
 */
import { parseArgs } from 'node:util';
import { startTestServer } from '../../test/helpers/test-server.js';
import { join } from 'node:path';
import { modelsDir } from '../../test/helpers/models-dir.js';
import { formatSoakReport, runSoak } from './soak.js';
import { PaintWorkload } from './paint-workload.js';

function positive(name: string, text: string | undefined, integer: boolean): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    process.stderr.write(`soak: --${name} must be a positive ${integer ? 'integer' : 'number'}, got '${text}'\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '8' },
      seed: { type: 'string', default: '1' },
      'max-batch': { type: 'string', default: '4' },
      'rss-bound-mb': { type: 'string', default: '64' },
      'heap-bound-mb': { type: 'string', default: '8' },
      json: { type: 'boolean', default: false },
      workload: { type: 'string', default: 'stories' },
    },
    strict: true,
  });
  const minutes = positive('minutes', values.minutes, false);
  const concurrency = positive('concurrency', values.concurrency, true);
  const seed = Number(values.seed);
  const maxBatch = positive('max-batch', values['max-batch'], true);

  const workloadName = values.workload;
  if (workloadName !== 'stories' && workloadName !== 'paint') {
    process.stderr.write(`soak: --workload must be stories or paint, got '${workloadName}'\n`);
    process.exit(2);
  }
  const errorLogs: string[] = [];
  const server = await startTestServer(
    // A short write timeout, so that the workload's non-reading clients are cut while the run lasts.
    { logLevel: 'warn', engine: { maxBatch }, http: { writeTimeoutSeconds: 2 } },
    {
      ...(workloadName === 'paint' ? { model: 'tiny-llava' } : {}),
      logStream: {
        write(line: string) {
          if (/"level":(50|60)/.test(line)) errorLogs.push(line.trim().slice(0, 400));
          if (/"level":40/.test(line)) process.stderr.write(line);
        },
      },
    },
  );
  process.stderr.write(`soak: ${minutes} min at concurrency ${concurrency} (max batch ${maxBatch}, seed ${seed}) against ${server.url}\n`);
  try {
    const report = await runSoak(server, {
      durationMs: minutes * 60_000,
      concurrency,
      seed,
      rssBoundMb: positive('rss-bound-mb', values['rss-bound-mb'], false),
      heapBoundMb: positive('heap-bound-mb', values['heap-bound-mb'], false),
      log: (line) => process.stderr.write(`${line}\n`),
      ...(workloadName === 'paint' ? { workload: new PaintWorkload(seed, join(modelsDir, 'tiny-llava')) } : {}),
    });
    for (const line of errorLogs) report.violations.push(`server logged an error: ${line}`);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatSoakReport(report)}\n`);
    return report.violations.length === 0 ? 0 : 1;
  } finally {
    await server.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`soak: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
