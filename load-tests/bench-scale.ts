/**
 * `npm run bench:scale`: attune on real model sizes, side by side with llama.cpp.
 *
 * Seeded random llama2.c checkpoints of the 15M, 110M and 1.1B (TinyLlama) shapes, vocabulary 32,000,
 * are built once into SCALE_CACHE and reused. For each shape and weight format, a fresh process loads
 * the model (building its weight store the first time) and measures load time, memory after load,
 * single-stream decode, batch-8 aggregate decode and a 128-token prefill, at 1 and 2 threads. With
 * LLAMA_CPP_DIR set, llama.cpp converts the same checkpoint with its own llama2.c converter, quantizes
 * it to the matching type, and llama-bench / llama-batched-bench run right after each of attune's
 * repeats: every ratio is a pair measured seconds apart, under the same load from the rest of the
 * machine, and the table gives the median pair and the range. Models run one at a time (the 1.1B f32 store build
 * and llama.cpp's converter each hold gigabytes).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WEIGHT_FORMATS, type WeightFormat } from '../models/onnx/weight-format.js';
import { formatLoadTimes, type LoadTimes } from '../src/engine/load-times.js';
import { cachedRandomModel, checkpointBytes, SCALE_SHAPES } from './random-llama2c.js';
import type { AttuneFigures, ThreadRun } from './scale-attune.js';
import { LLAMA_TYPE, prepareGguf } from './scale-llama-cpp.js';
import { machineHeader, median } from './report.js';

const env = process.env;
const CACHE = env.SCALE_CACHE ?? join(homedir(), '.cache', 'attune', 'bench-scale');
const SHAPES = (env.SCALE_SHAPES ?? '15M,110M,1.1B').split(',') as (keyof typeof SCALE_SHAPES)[];
const FORMATS = (env.SCALE_FORMATS ?? WEIGHT_FORMATS.join(',')).split(',') as WeightFormat[];
const THREADS = (env.SCALE_THREADS ?? '1,2').split(',').map(Number);
const REPEATS = Number(env.SCALE_REPEATS ?? 3);
const LLAMA = env.LLAMA_CPP_DIR;

const MB = 1024 * 1024;
const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;
const rate = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)).padStart(6);

interface Row {
  shape: string;
  attune: AttuneFigures;
  /** The 1-minute load average when the row finished: other work on the machine moves every figure. */
  loadAverage: number;
}

async function child<T>(args: string[]): Promise<T> {
  const script = fileURLToPath(new URL('./scale-attune.js', import.meta.url));
  // glibc's mmap threshold fixed, as the Dockerfile sets it (ARCHITECTURE.md, "Weights").
  const { stdout } = await promisify(execFile)(process.execPath, [script, ...args], {
    maxBuffer: 1 << 24,
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '131072' },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

async function attune(dir: string, format: WeightFormat): Promise<AttuneFigures> {
  const cache = join(CACHE, 'compiled');
  const coldLoad = await child<LoadTimes | null>(['prepare', dir, format, cache]);
  // llama.cpp's conversion (it holds the model twice) runs before attune's measuring process starts.
  const llama = LLAMA ? [LLAMA, await prepareGguf(LLAMA, dir, format)] : [];
  const figures = await child<Omit<AttuneFigures, 'coldLoad'>>(['measure', dir, format, cache, THREADS.join(','), String(REPEATS), ...llama]);
  return { ...figures, coldLoad };
}

const FIGURES = ['decode1', 'batch8', 'prefill128'] as const;

/** "median (attune ÷ llama.cpp: median of the paired ratios, min–max)". */
function cell(run: ThreadRun, figure: (typeof FIGURES)[number]): string {
  const a = median(run.attune.map((x) => x[figure]));
  if (!run.llama) return rate(a);
  const l = median(run.llama.map((x) => x[figure]));
  const ratios = run.attune.map((x, i) => x[figure] / run.llama![i]![figure]);
  return `${rate(a)} ${rate(l)}  ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
}

function report(row: Row): void {
  const a = row.attune;
  const m = a.memory;
  const cold = a.coldLoad ? `; first load (store built): ${formatLoadTimes(a.coldLoad)}` : '';
  const llamaRss = a.threads[0]?.llama ? `; llama.cpp ${LLAMA_TYPE[a.format]} llama-bench peak RSS ${mb(Math.max(...a.threads[0].llama.map((x) => x.peakRss)))}` : '';
  console.log(`  ${a.format} (served weights ${mb(a.servedBytes)}; load average ${row.loadAverage.toFixed(1)}): restart ${(a.warmLoadMs / 1000).toFixed(2)} s (${formatLoadTimes(a.warmLoad)})${cold}`);
  console.log(`    memory after load + one forward: RSS ${mb(m.rss)} (${(m.rss / a.servedBytes).toFixed(2)}x served), PSS ${mb(m.pss)} (${(m.pss / a.servedBytes).toFixed(2)}x), anonymous ${mb(m.anonymous)}${llamaRss}`);
  const head = LLAMA ? 'attune llama.cpp  ratio (range)' : 'attune';
  console.log(`    threads | decode tok/s: ${head} | batch-8 tok/s: ${head} | prefill-128 tok/s: ${head}`);
  for (const run of a.threads) console.log(`    ${String(run.threads).padStart(7)} | ${FIGURES.map((f) => cell(run, f)).join(' | ')}`);
}

async function main(): Promise<void> {
  console.log(machineHeader('bench:scale'));
  console.log(`cache ${CACHE}; formats ${FORMATS.join(', ')}; threads ${THREADS.join(', ')}; medians of ${REPEATS}; decode 32 tokens, batch 8, prefill 128 tokens` +
    (LLAMA ? `; llama.cpp from ${LLAMA}` : '; set LLAMA_CPP_DIR to compare with llama.cpp'));
  const rows: Row[] = [];
  for (const shape of SHAPES) {
    const s = SCALE_SHAPES[shape];
    const dir = await cachedRandomModel(join(CACHE, 'models'), `scale-${shape}`, s);
    console.log(`\n${shape}: dim ${s.dim}, ${s.nLayers} layers, ${s.nHeads}/${s.nKvHeads} heads, vocab ${s.vocabSize}; llama2.c file ${mb(checkpointBytes(s))}`);
    for (const format of FORMATS) {
      const row = { shape, attune: await attune(dir, format), loadAverage: loadavg()[0]! };
      rows.push(row);
      report(row);
    }
  }
  if (env.SCALE_JSON) await writeFile(env.SCALE_JSON, JSON.stringify({ header: machineHeader('bench:scale'), rows }, null, 1));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
