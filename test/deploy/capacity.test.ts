/**
 * The capacity model's arithmetic on fixed inputs, worked by hand in the comments, then the script
 * as `npm run capacity` runs it on the shipped figures, which must be the README's.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readFigures, type ReplicaFigures } from '../../load-tests/capacity/figures.js';
import { decodeRate, plan, servingEfficiency } from '../../load-tests/capacity/model.js';
import { repoRoot } from '../helpers/models-dir.js';

const figures: ReplicaFigures = {
  description: 'round numbers for hand arithmetic',
  model: 'test',
  cpuCores: 2,
  threads: 1,
  maxBatch: 8,
  engine: { source: 'test', decodeTokensPerSecond: { '1': 1000, '8': 4000 }, prefillTokensPerSecond: 10000 },
  // 20 req/s × 100 output tokens; prompt 100 tokens; 8 connections = the whole batch.
  load: { source: 'test', connections: 8, requestsPerSecond: 20, generatedTokensPerSecond: 2000, promptTokensMean: 100, ttftP50Ms: 50 },
};
const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} ≠ ${expected}`);

function runCapacity(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot, 'dist', 'load-tests', 'capacity', 'main.js'), ...args], (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('capacity model', () => {
  it('interpolates the decode rate between measured batches and holds it beyond them', () => {
    close(decodeRate(figures, 1), 1000, 'D(1)');
    close(decodeRate(figures, 4), 1000 + (3000 * 3) / 7, 'D(4)'); // 2285.714…
    close(decodeRate(figures, 8), 4000, 'D(8)');
    close(decodeRate(figures, 32), 4000, 'D(32): no unmeasured gain');
  });

  it('works a plan out by hand', () => {
    // η: the load test's work per request at batch 8 is 100/10000 + 100/4000 = 0.035 s; 20 req/s × 0.035 = 0.7.
    close(servingEfficiency(figures), 0.7, 'η');
    const p = plan(figures, { rps: 30, promptTokens: 200, outputTokens: 50 }, { ttftSeconds: 0.2, utilisation: 0.5, minReplicas: 2, maxBatch: 8 });
    const r = p.replica!;
    assert.equal(r.batch, 8);
    // w = 200/10000 + 50/4000 = 0.0325 s; λ = 0.7 / 0.0325 = 21.538… req/s.
    close(r.requestsPerSecond, 0.7 / 0.0325, 'λ');
    close(r.generatedTokensPerSecond, (0.7 / 0.0325) * 50, 'tokens/s');
    // A step: 8 / (0.7 × 4000) = 2.857 ms; TTFT floor: 200 / (0.7 × 10000) + that = 31.43 ms.
    close(r.itlSeconds, 8 / 2800, 'ITL');
    close(r.ttftFloorSeconds, 200 / 7000 + 8 / 2800, 'TTFT floor');
    close(r.queueWaitPerRequestSeconds, 0.0325 / 0.7, 'wait per queued request');
    // 30 / (0.5 × 21.538) = 2.79 → 3 replicas; (0.2 − 0.031429) × 21.538 = 3.63 → 3.6 waiting per pod.
    assert.equal(p.replicas, 3);
    assert.equal(p.hpaWaitingTarget, 3.6);
    assert.deepEqual(p.notes, []);
  });

  it('takes a smaller batch when the latency targets need it, and says when nothing meets them', () => {
    // Floor(b) = 28.571 ms + b / (0.7 D(b)): 30.0 ms at b = 1, 30.57 ms at b = 2; the target is 30.5 ms.
    const smaller = plan(figures, { rps: 1, promptTokens: 200, outputTokens: 50 }, { ttftSeconds: 0.0305, utilisation: 0.8, minReplicas: 1, maxBatch: 8 });
    assert.equal(smaller.replica?.batch, 1);
    assert.match(smaller.notes.join(), /--max-batch 1/);
    const itlBound = plan(figures, { rps: 1, promptTokens: 10, outputTokens: 50 }, { ttftSeconds: 1, itlSeconds: 0.002, utilisation: 0.8, minReplicas: 1, maxBatch: 8 });
    // b / (0.7 D(b)) ≤ 2 ms: b = 3 gives 3 / (0.7 × 1857.1) = 2.31 ms, b = 2 gives 2 / (0.7 × 1428.6) = 2.0 ms.
    assert.equal(itlBound.replica?.batch, 2);
    const none = plan(figures, { rps: 1, promptTokens: 200, outputTokens: 50 }, { ttftSeconds: 0.02, utilisation: 0.8, minReplicas: 1, maxBatch: 8 });
    assert.equal(none.replica, null);
    assert.equal(none.replicas, null);
    assert.match(none.notes[0]!, /no batch size meets the targets/);
  });

  it('the shipped figures are the README\'s benchmark figures', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const shipped = readFigures();
    const grouped = (n: number) => n.toLocaleString('en-US');
    for (const [batch, rate] of Object.entries(shipped.engine.decodeTokensPerSecond)) assert.ok(readme.includes(`${grouped(rate)} tok/s`), `decode at batch ${batch}: ${grouped(rate)} tok/s is in the README`);
    assert.ok(readme.includes(`${grouped(shipped.engine.prefillTokensPerSecond)} tok/s`), 'prefill rate');
    const { load } = shipped;
    assert.ok(readme.includes(`| ${load.requestsPerSecond} | ${grouped(load.generatedTokensPerSecond)} | ${load.ttftP50Ms} /`), 'the load scenario row');
    assert.ok(readme.includes(`${load.connections} connections`), 'the load scenario connections');
  });

  it('npm run capacity prints the plan for the shipped figures', async () => {
    const r = await runCapacity(['--rps', '100', '--prompt-tokens', '64', '--output-tokens', '128', '--ttft-ms', '500']);
    assert.equal(r.code, 0, r.stderr);
    // η = 60.3 × (59.8/40988 + (5460/60.3)/12111) = 0.5388; λ = η / (64/40988 + 128/12111) = 44.42 req/s;
    // 100 / (0.8 × 44.42) = 2.81 → 3; (0.5 − 0.00535) × 44.42 = 21.97 → 21.9 waiting per pod.
    assert.match(r.stdout, /serving efficiency η = 0\.539/);
    assert.match(r.stdout, /saturation\s+44\.4 req\/s, 5686 generated tok\/s/);
    assert.match(r.stdout, /replicas for 100 req\/s at 0\.8 utilisation: 3\n/);
    assert.match(r.stdout, /averageValue "21900m"/);
    // The base HPA carries the same target.
    assert.match(readFileSync(join(repoRoot, 'deploy', 'k8s', 'base', 'hpa.yaml'), 'utf8'), /averageValue: 21900m/);
  });

  it('refuses a bad argument with exit 2 and says which', async () => {
    const r = await runCapacity(['--rps=-3', '--prompt-tokens', '64', '--output-tokens', '128']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--rps must be a positive number, got '-3'/);
    const unreachable = await runCapacity(['--rps', '1', '--prompt-tokens', '100000', '--output-tokens', '1', '--ttft-ms', '1']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stdout, /no batch size meets the targets/);
  });
});
