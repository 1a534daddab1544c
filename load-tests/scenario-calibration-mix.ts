/**
 * Scenario (c): streaming POST /v1/completions where a third of the requests run uncalibrated, a
 * third with ACT on the profile's heads (`calibration: {"act": true}`) and a third with an explicit
 * head set and β, all batched together by the engine. Each variant is also reported on its own.
 *   node dist/load-tests/scenario-calibration-mix.js
 */
import { isMain, runMain, runScenario, type ScenarioOptions, type ScenarioResult } from './scenario.js';
import { loadPrompts, promptFor, samplingFor, type LoadRequest } from './workload.js';

/** Layers 2..4 exist in stories260K (5 layers, 8 heads); any model with ≥ 5 layers takes them. */
const EXPLICIT = { heads: { '2': [0, 6], '3': [6, 7], '4': [2, 4, 6] }, beta: 0.3 };

const VARIANTS = [
  { label: 'no calibration', calibration: undefined },
  { label: 'act: true', calibration: { act: true } },
  { label: 'act: explicit heads', calibration: { act: EXPLICIT } },
] as const;

export function runCalibrationMix(opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const prompts = loadPrompts();
  return runScenario(
    {
      title: '(c) calibration mix, streaming /v1/completions',
      streaming: true,
      defaults: { connections: 24, amount: 720, maxSeconds: 40, serverFlags: [] },
      make: (i): LoadRequest => {
        const v = VARIANTS[i % VARIANTS.length]!;
        return {
          path: '/v1/completions',
          body: {
            prompt: promptFor(i, prompts),
            ...samplingFor(i),
            stream: true,
            stream_options: { include_usage: true },
            ...(v.calibration ? { calibration: v.calibration } : {}),
          },
          stream: true,
          label: v.label,
        };
      },
      byLabel: VARIANTS.map((v) => v.label),
    },
    opts,
  );
}

if (isMain(import.meta.url)) runMain(() => runCalibrationMix());
