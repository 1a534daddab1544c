/**
 * `npm run bench:calibrators`: what ACT costs, measured side by side in one run.
 *
 * On stories260K: decode and prefill tokens/s with ACT on all heads of layers 2..L−1, as a ratio
 * against the plain graph, at batch 1 and batch 8, then where the added time goes (graph nodes
 * added, microseconds added per decode step). Then the same comparison on a seeded random
 * Llama-shaped model of 25M parameters, to show how the ratio moves with model width
 * (`BENCH_WIDE=0` skips it). Both sides run the same in-process engine loop, alternating, so
 * machine noise hits them alike. Then each vision calibrator's own section (calibrator-bench/).
 */
import { readFile } from 'node:fs/promises';
import { resolveModel } from '../models/resolve.js';
import { loadDecoderWeights } from '../models/load-decoder.js';
import { loadTokenizer } from '../models/tokenizers/load-tokenizer.js';
import type { ModelProfile } from '../models/profiles/profile.js';
import { loadModelProfile } from '../calibrators/index.js';
import type { DecoderWeights } from '../models/checkpoint/decoder-weights.js';
import type { Tokenizer } from '../models/tokenizers/tokenizer.js';
import { EngineCore, type EngineModel } from '../src/engine/engine-core.js';
import { EngineOptionsSchema } from '../src/engine/engine-options.js';
import { buildEngineModel } from '../src/engine/load-engine-model.js';
import { GREEDY_DEFAULTS } from '../src/engine/sampling/defaults.js';
import { CALIBRATORS } from '../calibrators/index.js';
import { act, defaultActLayers, type ActConfig } from '../calibrators/act.js';
import type { EngineEvent, GenerationRequest } from '../src/engine/types.js';
import { syntheticDecoder } from './synthetic-decoder.js';
import { machineHeader, median } from './report.js';
import { benchVar } from './calibrator-bench/var.js';
import { benchVhr } from './calibrator-bench/vhr.js';
import { benchPaint } from './calibrator-bench/paint.js';

const MODEL = process.env.BENCH_MODEL ?? 'stories260K';
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);
const DECODE_TOKENS = Number(process.env.BENCH_DECODE_TOKENS ?? 200);
const WIDE = process.env.BENCH_WIDE !== '0';
const WIDE_DECODE_TOKENS = 64;
const BATCHES = [1, 8];

const pad = (x: number, digits = 0) => x.toFixed(digits).padStart(7);

interface Bench {
  engine: EngineModel;
  actConfig: ActConfig;
  decodeRate(batch: number, calibrated: boolean, tokens: number): Promise<number>;
  prefillRate(batch: number, calibrated: boolean, prompt: number[]): Promise<number>;
}

/** An in-process engine with ACT on every head of the model's default ACT layers. */
async function setUp(name: string, weights: DecoderWeights, tokenizer: Tokenizer, profile: ModelProfile): Promise<Bench> {
  const { nLayers, nHeads } = weights.config;
  const allHeads = Object.fromEntries(defaultActLayers(nLayers).map((l) => [String(l), Array.from({ length: nHeads }, (_, h) => h)]));
  const actConfig = act.resolve({ heads: allHeads }, { name, config: weights.config, profile });
  const engine = await buildEngineModel({ name, weights, tokenizer, profile, calibrators: CALIBRATORS, options: { threads: 1, providers: [], plainFastPath: true } });
  const done = new Set<string>();
  const core = new EngineCore(engine, EngineOptionsSchema.parse({ maxBatch: 8, prefillChunk: 512 }), (events: EngineEvent[]) => {
    for (const e of events) if (e.type === 'finish' || e.type === 'error') done.add(e.id);
  });
  let seq = 0;
  const submit = (batch: number, promptIds: number[], maxTokens: number, calibrated: boolean): string[] =>
    Array.from({ length: batch }, () => {
      const r: GenerationRequest = {
        id: `r${seq++}`, promptIds, sampling: { ...GREEDY_DEFAULTS, maxTokens, ignoreEos: true }, calibration: calibrated ? { act: actConfig } : {},
      };
      core.submit(r);
      return r.id;
    });
  const drain = async (ids: string[]) => {
    while (!ids.every((id) => done.has(id))) await core.step();
  };
  return {
    engine,
    actConfig,
    /** Aggregate decode tokens/s for `batch` rows decoding together from BOS (prefill excluded). */
    async decodeRate(batch, calibrated, tokens) {
      const ids = submit(batch, [1], tokens, calibrated);
      await core.step(); // the batched prefill and each row's first token
      const t0 = performance.now();
      await drain(ids);
      return (batch * (tokens - 1)) / ((performance.now() - t0) / 1000);
    },
    /** Prefill tokens/s: `batch` copies of `prompt` in one step. */
    async prefillRate(batch, calibrated, prompt) {
      const ids = submit(batch, prompt, 1, calibrated);
      const t0 = performance.now();
      await drain(ids);
      return (batch * prompt.length) / ((performance.now() - t0) / 1000);
    },
  };
}

/** Medians of alternating plain/ACT runs. */
async function alternate(run: (calibrated: boolean) => Promise<number>): Promise<{ plain: number; act: number }> {
  const plain: number[] = [], withAct: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    plain.push(await run(false));
    withAct.push(await run(true));
  }
  return { plain: median(plain), act: median(withAct) };
}

async function nodeCounts(engine: EngineModel): Promise<{ plain: number; calibrated: number }> {
  return { plain: (await engine.graphs.sessionFor([])).graph.nodeCount, calibrated: (await engine.graphs.sessionFor(['act'])).graph.nodeCount };
}

async function main(): Promise<void> {
  const model = await resolveModel(MODEL);
  const weights = await loadDecoderWeights(model);
  const tokenizer = await loadTokenizer(model);
  const bench = await setUp(model.name, weights, tokenizer, loadModelProfile(model.name, model.dir));
  const { nLayers: L, nHeads: H } = weights.config;
  const text = await readFile(new URL('../../load-tests/data/bench-prompt.txt', import.meta.url), 'utf8');
  const prompt = tokenizer.encode(text, { addBos: true }).slice(0, 256);

  for (let i = 0; i < 2; i++) for (const c of [false, true]) await bench.decodeRate(8, c, DECODE_TOKENS); // warm-up
  const decode = new Map<number, { plain: number; act: number }>();
  const rows: string[] = [];
  for (const batch of BATCHES) {
    const dec = await alternate((c) => bench.decodeRate(batch, c, DECODE_TOKENS));
    const pre = await alternate((c) => bench.prefillRate(batch, c, prompt));
    decode.set(batch, dec);
    rows.push(`batch ${batch}  decode  plain ${pad(dec.plain)} tok/s   ACT ${pad(dec.act)} tok/s   ratio ${(dec.act / dec.plain).toFixed(3)}`);
    rows.push(`batch ${batch}  prefill plain ${pad(pre.plain)} tok/s   ACT ${pad(pre.act)} tok/s   ratio ${(pre.act / pre.plain).toFixed(3)}`);
  }
  console.log(machineHeader(`attune calibrator benchmark: ${MODEL}, ACT on all ${H} heads of layers 2..${L - 1}`));
  console.log(`(medians of ${REPEATS} alternating runs; decode ${DECODE_TOKENS} tokens from BOS; prefill ${prompt.length}-token prompts; target: decode ratio ≥ 0.85)`);
  for (const r of rows) console.log(r);

  // Where the added time goes: a decode step's cost is mostly per-node overhead on a model this small.
  const nodes = await nodeCounts(bench.engine);
  const added = nodes.calibrated - nodes.plain;
  console.log(`graph nodes: plain ${nodes.plain}, with ACT ${nodes.calibrated} (+${added} in ${L - 2} layers)`);
  for (const [batch, d] of decode) {
    const stepPlain = (batch / d.plain) * 1e6, stepAct = (batch / d.act) * 1e6;
    console.log(`batch ${batch}  decode step: plain ${pad(stepPlain, 1)} µs (${(stepPlain / nodes.plain).toFixed(2)} µs per node), ACT adds ${pad(stepAct - stepPlain, 1)} µs (${((stepAct - stepPlain) / added).toFixed(2)} µs per added node, its feeds included)`);
  }
  if (!WIDE) return;

  // The same fragment on a wider model of the same family: ACT's per-node cost stays, the plain
  // step grows with width, so the ratio approaches 1.
  const shape = { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: weights.config.vocabSize, maxSeqLen: 256 };
  const wide = await setUp('synthetic-25M', syntheticDecoder(shape), tokenizer, {});
  const params = shape.nLayers * (4 * shape.dim * shape.dim + 3 * shape.dim * shape.hiddenDim) + shape.vocabSize * shape.dim;
  await wide.decodeRate(8, false, WIDE_DECODE_TOKENS);
  await wide.decodeRate(8, true, WIDE_DECODE_TOKENS);
  console.log(`random Llama-shaped model, ${(params / 1e6).toFixed(1)}M parameters (dim ${shape.dim}, ${shape.nLayers} layers, ${shape.nHeads} heads), ACT on all heads of layers 2..${shape.nLayers - 1}; decode ${WIDE_DECODE_TOKENS} tokens from BOS:`);
  for (const batch of BATCHES) {
    const d = await alternate((c) => wide.decodeRate(batch, c, WIDE_DECODE_TOKENS));
    console.log(`batch ${batch}  decode  plain ${pad(d.plain)} tok/s   ACT ${pad(d.act)} tok/s   ratio ${(d.act / d.plain).toFixed(3)}`);
  }
}

/** `BENCH_SECTIONS=act,var,vhr,paint` (default: all) picks the calibrators measured. */
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'act,var,vhr,paint').split(',').map((x) => x.trim()));
async function run(): Promise<void> {
  if (SECTIONS.has('act')) await main();
  if (SECTIONS.has('var')) await benchVar();
  if (SECTIONS.has('vhr')) await benchVhr({ repeats: REPEATS, decodeTokens: DECODE_TOKENS, wide: WIDE });
  if (SECTIONS.has('paint')) await benchPaint({ repeats: REPEATS, decodeTokens: DECODE_TOKENS, wideDecodeTokens: WIDE_DECODE_TOKENS, wide: WIDE, log: console.log });
}

run().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
