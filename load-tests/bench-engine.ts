/**
 * `npm run bench:engine`: engine throughput on stories260K, all figures from one run, side by side.
 *   - single-stream decode tok/s and batch-8 aggregate decode tok/s, through the engine worker;
 *   - prefill tok/s for a 256-token prompt (worker clock: scheduled → first token);
 *   - the graph with a no-op fragment at every hook point over the plain graph (in-process, same loop).
 */
import { readFile } from 'node:fs/promises';
import { resolveModel } from '../models/resolve.js';
import { loadDecoderWeights } from '../models/load-decoder.js';
import { loadTokenizer } from '../models/tokenizers/load-tokenizer.js';
import { noopFragments } from '../models/compiler/noop-fragments.js';
import { EngineClient } from '../src/engine/engine-client.js';
import { EngineCore } from '../src/engine/engine-core.js';
import { EngineOptionsSchema } from '../src/engine/engine-options.js';
import { buildEngineModel } from '../src/engine/load-engine-model.js';
import { GREEDY_DEFAULTS } from '../src/engine/sampling/defaults.js';
import type { EngineEvent, GenerationRequest } from '../src/engine/types.js';
import { machineHeader, median } from './report.js';

const MODEL = process.env.BENCH_MODEL ?? 'stories260K';
const DECODE_TOKENS = 255;
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);

const req = (id: string, promptIds: number[], maxTokens: number): GenerationRequest => ({
  id, promptIds, sampling: { ...GREEDY_DEFAULTS, maxTokens, ignoreEos: true }, calibration: {},
});

/** Decode rate of one request: tokens after the first over the time since the first. */
async function timedRun(client: EngineClient, r: GenerationRequest): Promise<{ tokens: number; firstAt: number; lastAt: number; prefillMs: number }> {
  let tokens = 0, firstAt = 0, lastAt = 0, prefillMs = 0;
  for await (const e of client.generate(r)) {
    if (e.type === 'tokens' && e.tokenIds.length) {
      tokens += e.tokenIds.length;
      lastAt = performance.now();
      if (!firstAt) firstAt = lastAt;
    } else if (e.type === 'finish') prefillMs = e.timing.prefillMs;
    else if (e.type === 'error') throw new Error(e.message);
  }
  return { tokens, firstAt, lastAt, prefillMs };
}


async function inProcessDecodeRate(core: EngineCore, sink: { done: Set<string> }, id: string): Promise<number> {
  core.submit(req(id, [1], DECODE_TOKENS));
  await core.step(); // prefill + first token
  const t0 = performance.now();
  while (!sink.done.has(id)) await core.step();
  return (DECODE_TOKENS - 1) / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  const model = await resolveModel(MODEL);
  const client = await EngineClient.start({ model, engine: { maxBatch: 8 } });
  const tokenizer = await loadTokenizer(model);
  // JIT and ORT warm-up: the first few hundred steps run measurably slower.
  for (let i = 0; i < 3; i++) await timedRun(client, req(`warmup-${i}`, [1], DECODE_TOKENS));

  const single: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const r = await timedRun(client, req(`single-${i}`, [1], DECODE_TOKENS));
    single.push((r.tokens - 1) / ((r.lastAt - r.firstAt) / 1000));
  }

  const batch: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const runs = await Promise.all(Array.from({ length: 8 }, (_, k) => timedRun(client, req(`b-${i}-${k}`, [1], DECODE_TOKENS))));
    const first = Math.max(...runs.map((r) => r.firstAt));
    const last = Math.max(...runs.map((r) => r.lastAt));
    // Count only tokens produced while all 8 were decoding: every row makes one per step.
    batch.push((8 * (DECODE_TOKENS - 1)) / ((last - first) / 1000));
  }

  const long = (await readFile(new URL('../../load-tests/data/bench-prompt.txt', import.meta.url), 'utf8'));
  const promptIds = tokenizer.encode(long, { addBos: true }).slice(0, 256);
  if (promptIds.length < 256) throw new Error('bench prompt is shorter than 256 tokens');
  const prefill: number[] = [];
  for (let i = 0; i < REPEATS + 2; i++) prefill.push(256 / ((await timedRun(client, req(`p-${i}`, promptIds, 1))).prefillMs / 1000));
  await client.close();

  // Plain vs no-op hooks: the same in-process loop over two compiled graphs.
  const weights = await loadDecoderWeights(model);
  const rates: Record<'plain' | 'hooked', number[]> = { plain: [], hooked: [] };
  const cores = {} as Record<'plain' | 'hooked', { core: EngineCore; sink: { done: Set<string> } }>;
  for (const variant of ['plain', 'hooked'] as const) {
    const engineModel = await buildEngineModel({
      name: MODEL, weights, tokenizer, profile: {}, calibrators: [],
      extraFragments: variant === 'hooked' ? noopFragments() : [],
      options: { threads: 1, providers: [], plainFastPath: variant === 'plain' },
    });
    const sink = { done: new Set<string>() };
    const core = new EngineCore(engineModel, EngineOptionsSchema.parse({}), (events: EngineEvent[]) => {
      for (const e of events) if (e.type === 'finish' || e.type === 'error') sink.done.add(e.id);
    });
    cores[variant] = { core, sink };
    await inProcessDecodeRate(core, sink, `${variant}-warm`);
  }
  // Alternate the two so machine noise hits both alike.
  for (let i = 0; i < 2 * REPEATS; i++) {
    for (const variant of ['plain', 'hooked'] as const) {
      rates[variant].push(await inProcessDecodeRate(cores[variant].core, cores[variant].sink, `${variant}-${i}`));
    }
  }

  const s = median(single), b = median(batch), p = median(prefill);
  const hookedRatio = median(rates.hooked) / median(rates.plain);
  const fmt = (x: number) => x.toFixed(0).padStart(8);
  console.log(machineHeader(`attune engine benchmark: ${MODEL}`));
  console.log(`(medians of ${REPEATS} runs; decode from BOS for ${DECODE_TOKENS} tokens)`);
  console.log(`single-stream decode      ${fmt(s)} tok/s   (target ≥ 1500)`);
  console.log(`batch-8 aggregate decode  ${fmt(b)} tok/s   ${(b / s).toFixed(2)}x single (target ≥ 3x)`);
  console.log(`prefill, 256 tokens       ${fmt(p)} tok/s`);
  console.log(`in-process decode: plain ${fmt(median(rates.plain))} tok/s, no-op hooks at every hook ${fmt(median(rates.hooked))} tok/s → hooked/plain ${hookedRatio.toFixed(3)} (target ≥ 0.9)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
