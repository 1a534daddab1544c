/**
 * attune's side of `npm run bench:scale`, run in child processes so memory figures are one load's
 * alone: `prepare` loads a model folder in one weight format once (building the weight store if the
 * cache has none); `measure` loads it again, as a restart, and at each thread count measures
 * single-stream decode, batch-8 aggregate decode and a 128-token prefill through the engine's own
 * step loop. Each prints one JSON line.
 *
 *   node scale-attune.js prepare <model dir> <format> <cache dir>
 *   node scale-attune.js measure <model dir> <format> <cache dir> <threads,list> <repeats> [<llama.cpp dir> <gguf>]
 */
import { dirname } from 'node:path';
import { openLlama2cCheckpoint } from '../models/checkpoint/llama2c.js';
import type { WeightFormat } from '../models/onnx/weight-format.js';
import { readStoreIndex } from '../models/onnx/weight-store.js';
import { resolveModel } from '../models/resolve.js';
import { loadTokenizer } from '../models/tokenizers/load-tokenizer.js';
import { EngineCore } from '../src/engine/engine-core.js';
import { EngineOptionsSchema } from '../src/engine/engine-options.js';
import { buildStoredEngineModel, type LoadedEngineModel } from '../src/engine/load-engine-model.js';
import type { LoadTimes } from '../src/engine/load-times.js';
import { GREEDY_DEFAULTS } from '../src/engine/sampling/defaults.js';
import type { EngineEvent } from '../src/engine/types.js';
import { settledMemoryFigures, type MemoryFigures } from './process-memory.js';
import { measureLlamaCpp } from './scale-llama-cpp.js';
import { BATCH, DECODE_TOKENS, PREFILL_TOKENS, type LlamaSample, type Sample } from './scale-workload.js';

export interface ThreadRun {
  threads: number;
  attune: Sample[];
  /** Paired with `attune` repeat by repeat; null without LLAMA_CPP_DIR. */
  llama: LlamaSample[] | null;
}

export interface AttuneFigures {
  format: WeightFormat;
  /** The first load of this run, when it had to build the weight store (null: it was cached). */
  coldLoad: LoadTimes | null;
  warmLoad: LoadTimes;
  warmLoadMs: number;
  /** Bytes of the served weights in this format (what the graphs read). */
  servedBytes: number;
  /** After load and one forward, in bytes (process-memory.ts says which figure means what). */
  memory: MemoryFigures;
  threads: ThreadRun[];
}

export interface LlamaTarget {
  dir: string;
  gguf: string;
}

async function load(dir: string, format: WeightFormat, cacheDir: string, threads: number): Promise<{ model: LoadedEngineModel; times: LoadTimes; ms: number }> {
  const started = performance.now();
  const resolved = await resolveModel(dir);
  if (resolved.format !== 'llama2c') throw new Error(`${dir}: bench:scale models are llama2.c checkpoints`);
  const checkpoint = await openLlama2cCheckpoint(resolved.checkpoint);
  try {
    const { model, times } = await buildStoredEngineModel({
      name: resolved.name, checkpoint, cacheDir, profile: {}, calibrators: [],
      tokenizer: await loadTokenizer(resolved, { vocabSize: checkpoint.config.vocabSize }),
      options: { threads, providers: [], plainFastPath: true, weights: format },
    });
    return { model, times, ms: performance.now() - started };
  } finally {
    await checkpoint.close();
  }
}

/** The engine's own loop, in process: rows are submitted, then stepped until they finish. */
function engineLoop(model: LoadedEngineModel) {
  const done = new Set<string>();
  const core = new EngineCore(model, EngineOptionsSchema.parse({ maxBatch: BATCH, prefillChunk: 512, maxPrefillTokensPerStep: 4096 }), (events: EngineEvent[]) => {
    for (const e of events) {
      if (e.type === 'error') throw new Error(e.message);
      if (e.type === 'finish') done.add(e.id);
    }
  });
  let seq = 0;
  const submit = (n: number, promptIds: number[], maxTokens: number) => Array.from({ length: n }, () => {
    const id = `r${seq++}`;
    core.submit({ id, promptIds, sampling: { ...GREEDY_DEFAULTS, maxTokens, ignoreEos: true }, calibration: {} });
    return id;
  });
  const drain = async (ids: string[]) => {
    while (!ids.every((id) => done.has(id))) await core.step();
  };
  return {
    /** Aggregate decode tokens/s of `rows` rows from BOS, prefill and first token excluded. */
    async decode(rows: number): Promise<number> {
      const ids = submit(rows, [1], DECODE_TOKENS);
      await core.step();
      const t0 = performance.now();
      await drain(ids);
      return (rows * (DECODE_TOKENS - 1)) / ((performance.now() - t0) / 1000);
    },
    async prefill(prompt: number[]): Promise<number> {
      const ids = submit(1, prompt, 1);
      const t0 = performance.now();
      await drain(ids);
      return prompt.length / ((performance.now() - t0) / 1000);
    },
  };
}

/** The first load: builds the weight store when the cache has none. Returns its times, or null when it was cached. */
export async function prepareAttune(dir: string, format: WeightFormat, cacheDir: string): Promise<LoadTimes | null> {
  const first = await load(dir, format, cacheDir, 1);
  await first.model.graphs.release();
  return first.times.hit ? null : first.times;
}

/**
 * A restart (the store cached), then memory and speed; run in a fresh process so memory is this
 * load's alone. With `llama`, each repeat runs llama.cpp right after attune, so every pair is
 * measured under the same load from the rest of the machine.
 */
export async function measureAttune(dir: string, format: WeightFormat, cacheDir: string, threadList: number[], repeats: number, llama?: LlamaTarget): Promise<Omit<AttuneFigures, 'coldLoad'>> {
  const warm = await load(dir, format, cacheDir, threadList[0]!);
  const index = (await readStoreIndex(dirname((await warm.model.graphs.sessionFor([])).modelPath!)))!;
  await engineLoop(warm.model).prefill([1, 2, 3]);
  const memory = settledMemoryFigures();
  const prompt = Array.from({ length: PREFILL_TOKENS }, (_, i) => 3 + ((i * 7919) % (warm.model.config.vocabSize - 3)));
  const threads: ThreadRun[] = [];
  for (const t of threadList) {
    const { model } = t === threadList[0] ? warm : await load(dir, format, cacheDir, t);
    const loop = engineLoop(model);
    await loop.decode(1); // warm-up: JIT, arenas
    const run: ThreadRun = { threads: t, attune: [], llama: llama ? [] : null };
    for (let i = 0; i < repeats; i++) {
      run.attune.push({ decode1: await loop.decode(1), batch8: await loop.decode(BATCH), prefill128: await loop.prefill(prompt) });
      if (llama) run.llama!.push(await measureLlamaCpp(llama.dir, llama.gguf, t));
    }
    threads.push(run);
    await model.graphs.release();
  }
  return { format, warmLoad: warm.times, warmLoadMs: warm.ms, servedBytes: index.weightBytes, memory, threads };
}

if (process.argv[1]?.endsWith('scale-attune.js')) {
  const [mode, dir, format, cacheDir, threads, repeats, llamaDir, gguf] = process.argv.slice(2) as [
    'prepare' | 'measure', string, WeightFormat, string, string, string, string | undefined, string | undefined,
  ];
  const work = mode === 'prepare'
    ? prepareAttune(dir, format, cacheDir)
    : measureAttune(dir, format, cacheDir, threads.split(',').map(Number), Number(repeats), llamaDir && gguf ? { dir: llamaDir, gguf } : undefined);
  work
    .then((r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    })
    .catch((e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    });
}
