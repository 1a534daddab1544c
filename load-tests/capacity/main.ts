/**
 * `npm run capacity -- --rps R --prompt-tokens P --output-tokens O [--ttft-ms T] ...`: the capacity
 * model's answer (model.ts) from measured per-replica figures (figures.ts). A script, not a
 * benchmark: it measures nothing, it only does the arithmetic docs/scaling.md explains.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_FIGURES, readFigures } from './figures.js';
import { decodeRate, ms, plan, type Plan, type Targets, type Workload } from './model.js';

const HELP = `usage: npm run capacity -- --rps R --prompt-tokens P --output-tokens O [flags]

  --rps R              target requests/s over the whole deployment
  --prompt-tokens P    mean prompt tokens per request
  --output-tokens O    mean generated tokens per request
  --ttft-ms T          time-to-first-token target (default 500)
  --itl-ms I           inter-token latency bound (default none)
  --utilisation U      fraction of a replica's saturation rate to plan for (default 0.8)
  --min-replicas N     floor, for availability during rollouts and drains (default 2)
  --max-batch B        the largest --max-batch to consider (default: the figures' own)
  --figures FILE       measured per-replica figures (default load-tests/capacity/stories260K-2vcpu.json)
  --json               print the plan as JSON
`;

/** A Kubernetes quantity for the HPA's averageValue: "22" or "21900m". */
function quantity(v: number): string {
  return Number.isInteger(v) ? String(v) : `${Math.round(v * 1000)}m`;
}

function render(p: Plan, w: Workload, t: Targets, figures: ReturnType<typeof readFigures>): string {
  const lines = [
    `figures: ${figures.description}`,
    `workload: ${w.rps} req/s, ${w.promptTokens} prompt + ${w.outputTokens} output tokens; targets: TTFT ≤ ${t.ttftSeconds * 1000} ms${t.itlSeconds !== undefined ? `, ITL ≤ ${t.itlSeconds * 1000} ms` : ''}, utilisation ${t.utilisation}`,
    `serving efficiency η = ${p.efficiency.toFixed(3)} (load test ÷ engine benchmark)`,
  ];
  if (p.replica) {
    const r = p.replica;
    lines.push(
      '',
      `per replica (${figures.cpuCores} cores, --threads ${figures.threads}, --max-batch ${r.batch}):`,
      `  concurrent streams       ${r.batch}`,
      `  decode rate (engine)     ${decodeRate(figures, r.batch).toFixed(0)} tok/s`,
      `  saturation               ${r.requestsPerSecond.toFixed(1)} req/s, ${r.generatedTokensPerSecond.toFixed(0)} generated tok/s`,
      `  inter-token latency      ${ms(r.itlSeconds)} at a full batch`,
      `  TTFT with no queue       ${ms(r.ttftFloorSeconds)}`,
      `  each queued request adds ${ms(r.queueWaitPerRequestSeconds)} to TTFT`,
      '',
      `replicas for ${w.rps} req/s at ${t.utilisation} utilisation: ${p.replicas}`,
      `HPA target: attune_num_requests_waiting averageValue "${quantity(p.hpaWaitingTarget!)}" per pod (TTFT stays ≤ ${t.ttftSeconds * 1000} ms up to that queue)`,
      `CPU request per replica: ${figures.cpuCores}`,
    );
  }
  for (const n of p.notes) lines.push(`note: ${n}`);
  return `${lines.join('\n')}\n`;
}

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      rps: { type: 'string' },
      'prompt-tokens': { type: 'string' },
      'output-tokens': { type: 'string' },
      'ttft-ms': { type: 'string', default: '500' },
      'itl-ms': { type: 'string' },
      utilisation: { type: 'string', default: '0.8' },
      'min-replicas': { type: 'string', default: '2' },
      'max-batch': { type: 'string' },
      figures: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = (flag: string, text: string | undefined, check: (n: number) => boolean, what: string): number => {
    const n = Number(text);
    if (text === undefined || !Number.isFinite(n) || !check(n)) throw new Error(`--${flag} must be ${what}, got ${text === undefined ? 'nothing' : `'${text}'`}`);
    return n;
  };
  const positive = (n: number) => n > 0;
  const figures = readFigures(values.figures ?? DEFAULT_FIGURES);
  const w: Workload = {
    rps: num('rps', values.rps, positive, 'a positive number'),
    promptTokens: num('prompt-tokens', values['prompt-tokens'], (n) => n >= 1, 'at least 1'),
    outputTokens: num('output-tokens', values['output-tokens'], (n) => n >= 1, 'at least 1'),
  };
  const t: Targets = {
    ttftSeconds: num('ttft-ms', values['ttft-ms'], positive, 'a positive number') / 1000,
    ...(values['itl-ms'] !== undefined ? { itlSeconds: num('itl-ms', values['itl-ms'], positive, 'a positive number') / 1000 } : {}),
    utilisation: num('utilisation', values.utilisation, (n) => n > 0 && n <= 1, 'in (0, 1]'),
    minReplicas: num('min-replicas', values['min-replicas'], (n) => Number.isInteger(n) && n >= 1, 'an integer ≥ 1'),
    maxBatch: values['max-batch'] !== undefined ? num('max-batch', values['max-batch'], (n) => Number.isInteger(n) && n >= 1, 'an integer ≥ 1') : figures.maxBatch,
  };
  const p = plan(figures, w, t);
  process.stdout.write(values.json ? `${JSON.stringify(p, null, 2)}\n` : render(p, w, t, figures));
  return p.replica ? 0 : 1;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`capacity: ${(e as Error).message}\n\n${HELP}`);
  process.exitCode = 2;
}
