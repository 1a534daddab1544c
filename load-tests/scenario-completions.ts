/**
 * Scenario (a): non-streaming POST /v1/completions against `attune serve` defaults, with more
 * connections than KV slots so some requests queue. Without streaming the first token arrives with
 * the whole body, so TTFT is reported as the full latency.
 *   node dist/load-tests/scenario-completions.js
 */
import { isMain, runMain, runScenario, type ScenarioOptions, type ScenarioResult } from './scenario.js';
import { loadPrompts, promptFor, samplingFor, type LoadRequest } from './workload.js';

export function runCompletions(opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const prompts = loadPrompts();
  return runScenario(
    {
      title: '(a) non-streaming /v1/completions',
      streaming: false,
      defaults: { connections: 20, amount: 1200, maxSeconds: 40, serverFlags: [] },
      make: (i): LoadRequest => ({
        path: '/v1/completions',
        body: { prompt: promptFor(i, prompts), ...samplingFor(i) },
        stream: false,
        label: 'completions',
      }),
    },
    opts,
  );
}

if (isMain(import.meta.url)) runMain(() => runCompletions());
