/**
 * `npm run load`: every load scenario, one after another, each against its own fresh server, then
 * the HTTP-vs-engine benchmark; a summary of all of it at the end. The scenarios run in sequence
 * because each one needs the whole machine to mean anything.
 */
import { runBenchmark } from './bench-http-vs-engine.js';
import { LOAD_MODEL } from './model.js';
import { machineHeader } from './report.js';
import { runMain, type ScenarioResult } from './scenario.js';
import { runCalibrationMix } from './scenario-calibration-mix.js';
import { runChatStream } from './scenario-chat-stream.js';
import { runCompletions } from './scenario-completions.js';

async function main(): Promise<void> {
  console.log(machineHeader(`attune load tests (${LOAD_MODEL})`));
  const started = performance.now();
  const scenarios: ScenarioResult[] = [];
  for (const run of [runCompletions, runChatStream, runCalibrationMix]) scenarios.push(await run());
  const bench = await runBenchmark();

  console.log(`\n== Summary (${((performance.now() - started) / 1000).toFixed(0)} s) ==`);
  console.log(`  ${'scenario'.padEnd(48)} ${'req/s'.padStart(7)} ${'tok/s'.padStart(7)}   ${'TTFT p50 / p99 (ms)'.padEnd(20)} errors`);
  for (const { summary: s } of scenarios) {
    const t = s.streaming ? s.ttft : s.latency;
    const e = s.errors;
    const errors = e.non2xx + e.socket + e.timeouts + e.streamErrors + e.truncated + e.unanswered;
    console.log(
      `  ${s.title.padEnd(48)} ${s.requestsPerSecond.toFixed(1).padStart(7)} ${s.tokensPerSecond.toFixed(0).padStart(7)}   ${(t ? `${t.p50.toFixed(0)} / ${t.p99.toFixed(0)}` : 'n/a').padEnd(20)} ${errors}`,
    );
  }
  console.log(
    `  benchmark, ${bench.clients} streaming clients at batch ${bench.clients}: HTTP ${bench.http.tokensPerSecond.toFixed(0)} tok/s, engine ${bench.engine.tokensPerSecond.toFixed(0)} tok/s, ratio ${bench.ratio.toFixed(3)} (target ≥ 0.70)`,
  );
  const problems = scenarios.flatMap((s) => s.serverProblems);
  if (problems.length) console.log(`  the servers logged ${problems.length} lines at warn or above (shown above with a [server] prefix)`);
}

runMain(main);
