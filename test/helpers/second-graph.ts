/**
 * Run as a script (`node second-graph.js <format>`): loads the 110M-shape model in one weight format
 * (its store built beforehand), runs a plain request, then an ACT one, and prints the memory figures
 * before, after the first graph and after the second as one JSON line. memory.test.ts runs it in a
 * fresh process with glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_), as the Dockerfile does:
 * otherwise glibc raises the threshold as it goes and keeps freed temporaries of session creation in
 * its heap, tens of MB that come and go from one run to the next and are no copy of any weight.
 */
import { dirname } from 'node:path';
import { act } from '../../calibrators/act.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { readStoreIndex } from '../../models/onnx/weight-store.js';
import type { WeightFormat } from '../../models/onnx/weight-format.js';
import { settledMemoryFigures, type MemoryFigures } from '../../load-tests/process-memory.js';
import { random110M, TEST_COMPILED_CACHE } from './test-models.js';
import { storedEngineModel } from './load-fixture-model.js';
import { InProcessEngine, request } from './engine-harness.js';

export interface SecondGraph {
  /** Bytes of the store's encoded weights. */
  weights: number;
  before: MemoryFigures;
  oneGraph: MemoryFigures;
  twoGraphs: MemoryFigures;
  /** The fragment sets with an open graph at the end. */
  openSets: string[][];
}

/** Loads the 110M-shape model (its store built beforehand), runs a plain request, then an ACT one. */
export async function secondGraph(format: WeightFormat): Promise<SecondGraph> {
  const { path, tokenizer } = await random110M();
  const cache = TEST_COMPILED_CACHE;
  // Build the store first (unless kept from an earlier run), so what is measured is a restart,
  // not the one-off encoding.
  await (await storedEngineModel(path, tokenizer, cache, { weights: format })).model.graphs.release();
  const before = settledMemoryFigures();
  const { model } = await storedEngineModel(path, tokenizer, cache, { weights: format, calibrators: [act as AnyCalibrator] });
  const index = (await readStoreIndex(dirname((await model.graphs.sessionFor([])).modelPath!)))!;
  const engine = new InProcessEngine(model, { maxBatch: 2 });
  const prompt = [1, 500, 600, 700, 800];
  await engine.run(request('plain', prompt, { maxTokens: 8, ignoreEos: true }));
  const oneGraph = settledMemoryFigures();
  const config = act.resolve({ heads: { 2: [0, 1], 5: [3] } }, { name: 'scale-110M', config: model.config, profile: {} });
  await engine.run(request('act', prompt, { maxTokens: 8, ignoreEos: true }, { act: config }));
  const twoGraphs = settledMemoryFigures();
  const openSets = model.graphs.openSets;
  await model.graphs.release();
  return { weights: index.weightBytes, before, oneGraph, twoGraphs, openSets };
}

if (process.argv[1]?.endsWith('second-graph.js')) {
  secondGraph(process.argv[2] as WeightFormat).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
