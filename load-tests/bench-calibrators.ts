/**
 * `npm run bench:calibrators`: what ACT costs, measured side by side in one run on stories260K.
 * Decode and prefill tokens/s with ACT on all heads of layers 2..L−1, as a ratio against the plain
 * graph, at batch 1 and batch 8. Both sides run the same in-process engine loop, alternating, so
 * machine noise hits them alike.
 */
import { cpus } from 'node:os';
import { readFile } from 'node:fs/promises';
import { resolveModel } from '../models/resolve.js';
import { loadDecoderWeights } from '../models/load-decoder.js';
import { loadTokenizer } from '../models/tokenizers/load-tokenizer.js';
import { loadProfile } from '../models/profiles/profile.js';
import { EngineCore } from '../src/engine/engine-core.js';
import { EngineOptionsSchema } from '../src/engine/engine-options.js';
import { buildEngineModel } from '../src/engine/load-engine-model.js';
import { GREEDY_DEFAULTS } from '../src/engine/sampling/defaults.js';
import { CALIBRATORS } from '../calibrators/index.js';
import { act } from '../calibrators/act.js';
import type { EngineEvent, GenerationRequest } from '../src/engine/types.js';

const MODEL = process.env.BENCH_MODEL ?? 'stories260K';
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);
const DECODE_TOKENS = Number(process.env.BENCH_DECODE_TOKENS ?? 200);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const model = await resolveModel(MODEL);
  const weights = await loadDecoderWeights(model);
  const tokenizer = await loadTokenizer(model);
  const profile = loadProfile(model.name, model.dir);
  const facts = { name: model.name, config: weights.config, profile };
  const L = weights.config.nLayers, H = weights.config.nHeads;
  const allHeads = Object.fromEntries(Array.from({ length: L - 2 }, (_, i) => [String(i + 2), Array.from({ length: H }, (_, h) => h)]));
  const actConfig = act.resolve({ heads: allHeads }, facts);
  const engineModel = await buildEngineModel({ name: model.name, weights, tokenizer, profile, calibrators: CALIBRATORS, options: { threads: 1, providers: [], plainFastPath: true } });

  const done = new Set<string>();
  const core = new EngineCore(engineModel, EngineOptionsSchema.parse({ maxBatch: 8, prefillChunk: 512 }), (events: EngineEvent[]) => {
    for (const e of events) if (e.type === 'finish' || e.type === 'error') done.add(e.id);
  });
  let seq = 0;
  const req = (promptIds: number[], maxTokens: number, calibrated: boolean): GenerationRequest => ({
    id: `r${seq++}`, promptIds, sampling: { ...GREEDY_DEFAULTS, maxTokens, ignoreEos: true }, calibration: calibrated ? { act: actConfig } : {},
  });

  /** Aggregate decode tokens/s for `batch` rows decoding together (prefill excluded). */
  async function decodeRate(batch: number, calibrated: boolean): Promise<number> {
    const ids = Array.from({ length: batch }, () => req([1], DECODE_TOKENS, calibrated)).map((r) => (core.submit(r), r.id));
    await core.step(); // the batched prefill and each row's first token
    const t0 = performance.now();
    while (!ids.every((id) => done.has(id))) await core.step();
    return (batch * (DECODE_TOKENS - 1)) / ((performance.now() - t0) / 1000);
  }

  const text = await readFile(new URL('../../load-tests/data/bench-prompt.txt', import.meta.url), 'utf8');
  const prompt = tokenizer.encode(text, { addBos: true }).slice(0, 256);
  /** Prefill tokens/s: `batch` 256-token prompts in one step. */
  async function prefillRate(batch: number, calibrated: boolean): Promise<number> {
    const ids = Array.from({ length: batch }, () => req(prompt, 1, calibrated)).map((r) => (core.submit(r), r.id));
    const t0 = performance.now();
    while (!ids.every((id) => done.has(id))) await core.step();
    return (batch * prompt.length) / ((performance.now() - t0) / 1000);
  }

  for (let i = 0; i < 2; i++) for (const c of [false, true]) await decodeRate(8, c);
  const rows: string[] = [];
  for (const batch of [1, 8]) {
    const dec = { plain: [] as number[], act: [] as number[] };
    const pre = { plain: [] as number[], act: [] as number[] };
    for (let i = 0; i < REPEATS; i++) {
      dec.plain.push(await decodeRate(batch, false));
      dec.act.push(await decodeRate(batch, true));
      pre.plain.push(await prefillRate(batch, false));
      pre.act.push(await prefillRate(batch, true));
    }
    const f = (x: number) => x.toFixed(0).padStart(7);
    rows.push(`batch ${batch}  decode  plain ${f(median(dec.plain))} tok/s   ACT ${f(median(dec.act))} tok/s   ratio ${(median(dec.act) / median(dec.plain)).toFixed(3)}`);
    rows.push(`batch ${batch}  prefill plain ${f(median(pre.plain))} tok/s   ACT ${f(median(pre.act))} tok/s   ratio ${(median(pre.act) / median(pre.plain)).toFixed(3)}`);
  }
  console.log(`attune calibrator benchmark: ${MODEL}, ACT on all ${H} heads of layers 2..${L - 1}; ${new Date().toISOString().slice(0, 10)}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
  console.log(`(medians of ${REPEATS} alternating runs; decode ${DECODE_TOKENS} tokens from BOS; prefill ${prompt.length}-token prompts; target: decode ratio ≥ 0.85)`);
  for (const r of rows) console.log(r);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
