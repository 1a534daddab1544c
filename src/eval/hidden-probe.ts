/**
 * Reads the RMS-normalised hidden state |x / RMS(x)| (no norm gain, eps 1e-6: what VAR's φ takes
 * its maximum of) at the input of chosen decoder layers, for image prompts run through the real
 * engine in this process. `attune profile var` finds massive-activation dimensions with it.
 *
 * The readout is a tap fragment at `blocks.{l}.hook_resid_pre` computing the same ops as VAR's sink
 * detection, so the profile sees exactly the values the calibrator thresholds.
 */
import { z } from 'zod';
import { attr } from '../../models/onnx/graph-builder.js';
import { DIM } from '../../models/compiler/hooks.js';
import { loadDecoderWeights } from '../../models/load-decoder.js';
import { loadLlavaVision } from '../../models/checkpoint/llava-vision.js';
import type { ResolvedModel } from '../../models/resolve.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { AnyCalibrator, Calibrator, TapValue } from '../../calibrators/calibrator.js';
import { VAR_EPS } from '../../calibrators/var.js';
import { EngineCore } from '../engine/engine-core.js';
import { EngineOptionsSchema } from '../engine/engine-options.js';
import { buildEngineModel } from '../engine/load-engine-model.js';
import { GREEDY_DEFAULTS } from '../engine/sampling/defaults.js';
import type { EngineEvent, ImageInput, ImageSpan } from '../engine/types.js';

const PROBE = 'hidden_probe';

export interface ProbePrompt {
  ids: number[];
  spans: ImageSpan[];
  images: ImageInput[];
}

/** Layer → `[T, dim]` row-major |x/RMS(x)| of one prompt's tokens at that layer's input. */
export type LayerReadout = ReadonlyMap<number, Float32Array>;

export interface HiddenProbe {
  dim: number;
  nLayers: number;
  /** Runs one prompt (the whole prompt in one forward) and returns its readout. */
  read(prompt: ProbePrompt): Promise<LayerReadout>;
}

function probeCalibrator(layers: ReadonlySet<number>, dim: number, sink: (taps: ReadonlyMap<string, TapValue>) => void): Calibrator<Record<string, never>, null> {
  return {
    id: PROBE,
    summary: 'reads normalised hidden states for attune profile var',
    schema: z.object({}).strict(),
    resolve: () => ({}),
    isActive: () => true,
    needsWholePrefill: () => true,
    fragments: () => [{
      owner: PROBE,
      hook: 'hook_resid_pre',
      layers: (l) => layers.has(l),
      build(x, ctx) {
        const { g } = ctx;
        const ones = ctx.shared('ones', () => g.initializer(g.fresh('probe_ones'), 'float32', [dim], new Float32Array(dim).fill(1)));
        const z = g.op('SimplifiedLayerNormalization', [x, ones], { axis: attr.int(-1), epsilon: attr.float(VAR_EPS) });
        ctx.tap(`z.${ctx.layer}`, g.op('Abs', [z]), [DIM.queries, dim]);
        return x;
      },
    }],
    createMemo: () => null,
    writeInputs: () => undefined,
    afterStep: (_cfg, row, _memo, taps) => {
      if (row.isPrefill) sink(taps);
    },
    report: () => ({}),
  };
}

/** Loads the model (weights, tower, tokenizer) into an in-process engine that reads `layers`. */
export async function startHiddenProbe(model: ResolvedModel, tokenizer: Tokenizer, layers: readonly number[], threads = 1): Promise<HiddenProbe> {
  const weights = await loadDecoderWeights(model);
  const { dim, nLayers } = weights.config;
  let latest: LayerReadout | null = null;
  const probe = probeCalibrator(new Set(layers), dim, (taps) => {
    latest = new Map([...taps].map(([name, t]) => [Number(name.slice(2)), Float32Array.from(t.data)]));
  });
  const engine = await buildEngineModel({
    name: model.name, weights, vision: await loadLlavaVision(model.dir), tokenizer, profile: {},
    calibrators: [probe as AnyCalibrator], options: { threads, providers: [], plainFastPath: false },
  });
  let failure: string | null = null;
  let done = false;
  const core = new EngineCore(engine, EngineOptionsSchema.parse({ maxBatch: 1, maxPrefillTokensPerStep: weights.config.maxSeqLen }), (events: EngineEvent[]) => {
    for (const e of events) {
      if (e.type === 'error') failure = e.message;
      if (e.type === 'finish' || e.type === 'error') done = true;
    }
  });
  let seq = 0;
  return {
    dim,
    nLayers,
    async read(prompt) {
      latest = null;
      failure = null;
      done = false;
      core.submit({
        id: `probe-${seq++}`, promptIds: prompt.ids, images: { spans: prompt.spans, inputs: prompt.images },
        sampling: { ...GREEDY_DEFAULTS, maxTokens: 0 }, calibration: { [PROBE]: {} },
      });
      while (!done) await core.step();
      if (failure) throw new Error(`the probe forward failed: ${failure}`);
      if (!latest) throw new Error('the probe forward gave no readout');
      return latest;
    },
  };
}
