/**
 * Weights held once: a second graph of the same model (here the ACT graph beside the plain one) maps
 * the same weight store, pre-packed weights included, so it adds far less than the weights' size,
 * in every format. Measured on a seeded random model of the 110M shape, as PSS and anonymous memory
 * (load-tests/process-memory.ts says why not RSS: RSS counts the shared file pages once per session),
 * in a fresh process (helpers/second-graph.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { SecondGraph } from '../helpers/second-graph.js';

const MB = 1024 * 1024;

async function measure(format: string): Promise<SecondGraph> {
  const script = fileURLToPath(new URL('../helpers/second-graph.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script, format], {
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as SecondGraph;
}

describe('memory: weights held once', () => {
  for (const format of ['f32', 'int8', 'int4'] as const) {
    it(`${format}: a second graph of the same model adds less than 10% of the weights (PSS and anonymous memory)`, async () => {
      const m = await measure(format);
      assert.deepEqual(m.openSets, [[], ['act']]);
      const fmt = (n: number) => `${(n / MB).toFixed(1)} MB`;
      console.log(
        `${format}: weights ${fmt(m.weights)}; one graph: PSS +${fmt(m.oneGraph.pss - m.before.pss)}, anonymous +${fmt(m.oneGraph.anonymous - m.before.anonymous)}; ` +
          `second graph: PSS +${fmt(m.twoGraphs.pss - m.oneGraph.pss)}, anonymous +${fmt(m.twoGraphs.anonymous - m.oneGraph.anonymous)}, RSS +${fmt(m.twoGraphs.rss - m.oneGraph.rss)} (RSS counts the shared pages again)`,
      );
      assert.ok(m.twoGraphs.pss - m.oneGraph.pss < 0.1 * m.weights, 'PSS of the second graph');
      assert.ok(m.twoGraphs.anonymous - m.oneGraph.anonymous < 0.1 * m.weights, 'anonymous memory of the second graph');
      // The first graph holds the weights about once (what it touched of them), not once per copy.
      assert.ok(m.oneGraph.pss - m.before.pss < 1.3 * m.weights, 'PSS of the first graph');
    });
  }
});
