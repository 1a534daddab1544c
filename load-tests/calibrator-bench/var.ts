/**
 * VAR's section of `npm run bench:calibrators`: decode and prefill tokens/s of image prompts with VAR
 * on (defaults: layers 2..L−2) against the plain graph, side by side in one run, at batch 1 and 8, on
 * tiny-llava and on a seeded random LLaVA whose language model has the wide shape of the ACT
 * comparison (load-tests/synthetic-llava.ts; random pixels). Both sides run the same in-process
 * engine loop, alternating, so machine noise hits them alike.
 *
 * The engines here register VAR alone, which is VAR's own cost. A served engine registers every
 * calibrator, but compiles a graph per set of active calibrators, so a VAR row runs the graph that
 * holds VAR's fragments only: the last rows measure that served engine on the wide model, which
 * should match VAR alone.
 */
import { readFile } from 'node:fs/promises';
import { resolveModel } from '../../models/resolve.js';
import { loadDecoderWeights } from '../../models/load-decoder.js';
import { loadLlavaVision, type LlavaVision } from '../../models/checkpoint/llava-vision.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import { loadVisionPromptAssets } from '../../models/vision-model.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import type { ModelProfile } from '../../models/profiles/profile.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { CALIBRATORS, loadModelProfile } from '../../calibrators/index.js';
import { varCalibrator, type VarConfig } from '../../calibrators/var.js';
import { EngineCore, type EngineModel } from '../../src/engine/engine-core.js';
import { EngineOptionsSchema } from '../../src/engine/engine-options.js';
import { buildEngineModel } from '../../src/engine/load-engine-model.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';
import { RowRng } from '../../src/engine/sampling/rng.js';
import type { EngineEvent, GenerationRequest, ImageInput, ImageSpan } from '../../src/engine/types.js';
import { preprocessImage } from '../../src/api/images/preprocess.js';
import { syntheticLlava, SYNTHETIC_IMAGE_TOKEN } from '../synthetic-llava.js';
import { machineHeader, median } from '../report.js';

const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);
const DECODE_TOKENS = Number(process.env.BENCH_DECODE_TOKENS ?? 200);
const WIDE = process.env.BENCH_WIDE !== '0';
const WIDE_DECODE_TOKENS = 64;
const BATCHES = [1, 8];
const TOKENS_PER_IMAGE = 16;

const pad = (x: number, digits = 0) => x.toFixed(digits).padStart(7);

/** One image prompt: BOS, text, the image's placeholder tokens, more text. */
interface ImagePrompt {
  ids: number[];
  spans: ImageSpan[];
  image: ImageInput;
}

/**
 * Tokens per second of wall time and of this process's CPU time (user + system, every thread). On a
 * shared machine the wall clock also counts the time other processes hold the cores; CPU time
 * counts only the work done, so its ratios move much less from run to run.
 */
interface Rate {
  wall: number;
  cpu: number;
}

/** Runs `fn` and turns `tokens` into rates over its wall and CPU time. */
async function timed(tokens: number, fn: () => Promise<void>): Promise<Rate> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall: tokens / wall, cpu: tokens / ((cpu.user + cpu.system) / 1e6) };
}

interface VarBench {
  engine: EngineModel;
  config: VarConfig;
  decodeRate(batch: number, calibrated: boolean, tokens: number): Promise<Rate>;
  prefillRate(batch: number, calibrated: boolean): Promise<Rate>;
  /** VAR's report on one prefill of the prompt (what it found there). */
  probe(): Promise<Record<string, unknown>>;
}

async function setUp(name: string, weights: DecoderWeights, vision: LlavaVision, tokenizer: Tokenizer, profile: ModelProfile, prompt: ImagePrompt, calibrators: readonly AnyCalibrator[]): Promise<VarBench> {
  const engine = await buildEngineModel({ name, weights, vision, tokenizer, profile, calibrators, options: { threads: 1, providers: [], plainFastPath: true } });
  const config = varCalibrator.resolve(true, engine.facts);
  const finished = new Map<string, EngineEvent>();
  const core = new EngineCore(engine, EngineOptionsSchema.parse({ maxBatch: 8, prefillChunk: 512, maxPrefillTokensPerStep: 8192 }), (events) => {
    for (const e of events) if (e.type === 'finish' || e.type === 'error') finished.set(e.id, e);
  });
  let seq = 0;
  const submit = (batch: number, maxTokens: number, calibrated: boolean): string[] =>
    Array.from({ length: batch }, () => {
      const r: GenerationRequest = {
        id: `v${seq++}`, promptIds: prompt.ids, images: { spans: prompt.spans, inputs: [prompt.image] },
        sampling: { ...GREEDY_DEFAULTS, maxTokens, ignoreEos: true }, calibration: calibrated ? { var: config } : {},
      };
      core.submit(r);
      return r.id;
    });
  const drain = async (ids: string[]) => {
    while (!ids.every((id) => finished.has(id))) await core.step();
    for (const id of ids) {
      const e = finished.get(id)!;
      if (e.type === 'error') throw new Error(`bench request failed: ${e.message}`);
    }
  };
  return {
    engine,
    config,
    /** Aggregate decode tokens/s of `batch` rows decoding together (their prefill and first token excluded). */
    async decodeRate(batch, calibrated, tokens) {
      const ids = submit(batch, tokens, calibrated);
      await core.step(); // encode, the batched prefill and the first two tokens of each row
      return timed(batch * (tokens - 2), () => drain(ids));
    },
    /** Prompt tokens/s: `batch` copies of the prompt in one step, image encoding included. */
    async prefillRate(batch, calibrated) {
      const ids = submit(batch, 1, calibrated);
      return timed(batch * prompt.ids.length, () => drain(ids));
    },
    async probe() {
      const [id] = submit(1, 1, true);
      await drain([id!]);
      const e = finished.get(id!)!;
      return e.type === 'finish' ? (e.calibration.var as Record<string, unknown>) : {};
    },
  };
}

type Pair = { plain: Rate; var: Rate };

/** Medians of alternating plain/VAR runs. */
async function alternate(run: (calibrated: boolean) => Promise<Rate>): Promise<Pair> {
  const plain: Rate[] = [], withVar: Rate[] = [];
  for (let i = 0; i < REPEATS; i++) {
    plain.push(await run(false));
    withVar.push(await run(true));
  }
  const med = (rs: Rate[]): Rate => ({ wall: median(rs.map((r) => r.wall)), cpu: median(rs.map((r) => r.cpu)) });
  return { plain: med(plain), var: med(withVar) };
}

const line = (what: string, p: Pair) =>
  `${what} plain ${pad(p.plain.wall)} tok/s   VAR ${pad(p.var.wall)} tok/s   ratio ${(p.var.wall / p.plain.wall).toFixed(3)}   by CPU time ${(p.var.cpu / p.plain.cpu).toFixed(3)}`;

async function compare(bench: VarBench, decodeTokens: number, decodeOnly = false): Promise<{ rows: string[]; decode: Map<number, Pair> }> {
  for (const c of [false, true]) await bench.decodeRate(8, c, Math.min(decodeTokens, 32)); // warm-up
  const rows: string[] = [];
  const decode = new Map<number, Pair>();
  for (const batch of BATCHES) {
    const d = await alternate((c) => bench.decodeRate(batch, c, decodeTokens));
    decode.set(batch, d);
    rows.push(line(`batch ${batch}  decode `, d));
    if (!decodeOnly) rows.push(line(`batch ${batch}  prefill`, await alternate((c) => bench.prefillRate(batch, c))));
  }
  return { rows, decode };
}

async function nodeCounts(engine: EngineModel): Promise<{ plain: number; calibrated: number }> {
  const [plain, calibrated] = await Promise.all([engine.graphs.sessionFor([]), engine.graphs.sessionFor(['var'])]);
  return { plain: plain.graph.nodeCount, calibrated: calibrated.graph.nodeCount };
}

function found(report: Record<string, unknown>): string {
  return `VAR found ${String(report.visual_sinks)} visual sinks over its layers and edited ${String(report.rows_edited)} (head, row) pairs at prefill`;
}

/** Text ids around one image: `before` tokens (BOS first), the placeholders, `after` tokens. */
function imagePrompt(text: number[], before: number, after: number, image: ImageInput, imageToken: number): ImagePrompt {
  const body = text.filter((t) => t !== imageToken);
  const ids = [...body.slice(0, before), ...new Array<number>(TOKENS_PER_IMAGE).fill(imageToken), ...body.slice(before, before + after)];
  return { ids, spans: [{ image: 0, start: before, length: TOKENS_PER_IMAGE }], image };
}

export async function benchVar(): Promise<void> {
  console.log(machineHeader('\nattune calibrator benchmark: VAR'));
  let resolved: Awaited<ReturnType<typeof resolveModel>>;
  try {
    resolved = await resolveModel('tiny-llava', { download: false });
  } catch (e) {
    console.log(`VAR section skipped: ${(e as Error).message}`);
    return;
  }
  const weights = await loadDecoderWeights(resolved);
  const tokenizer = await loadTokenizer(resolved, { vocabSize: weights.config.vocabSize });
  const vision = await loadLlavaVision(resolved.dir);
  const assets = (await loadVisionPromptAssets(resolved))!;
  const text = tokenizer.encode(await readFile(new URL('../../../load-tests/data/bench-prompt.txt', import.meta.url), 'utf8'), { addBos: true });
  const fixture = await readFile(`${resolved.dir}/images/half_bright.png`);
  const { pixels } = await preprocessImage(fixture, assets.preprocessing, { param: 'image', limits: { maxImageBytes: 1 << 24, maxImagePixels: 1 << 24 } });
  // 256 tokens as in the ACT comparison: a few tokens, the image (where the fixture's template puts it), text.
  const prompt = imagePrompt(text, 8, 232, { pixels, key: 'half_bright' }, vision.spec.imageTokenId);
  const bench = await setUp('tiny-llava', weights, vision, tokenizer, loadModelProfile('tiny-llava', resolved.dir), prompt, [varCalibrator as AnyCalibrator]);
  const L = weights.config.nLayers;
  const { rows, decode } = await compare(bench, DECODE_TOKENS);
  console.log(`\nVAR on tiny-llava (layers 2..${L - 2}, p ${bench.config.recycleFraction}, ρ ${bench.config.minNonsinkRatio}, τ ${bench.config.tau}, dims [${bench.config.sinkDims}]); ` +
    `${prompt.ids.length}-token prompt with one image (half_bright.png); decode ${DECODE_TOKENS} tokens; medians of ${REPEATS} alternating runs; ${found(await bench.probe())}:`);
  for (const r of rows) console.log(r);
  const nodes = await nodeCounts(bench.engine);
  const added = nodes.calibrated - nodes.plain;
  console.log(`graph nodes: plain ${nodes.plain}, with VAR ${nodes.calibrated} (+${added} in ${L - 2} compiled layers)`);
  for (const [batch, d] of decode) {
    const stepPlain = (batch / d.plain.cpu) * 1e6, stepVar = (batch / d.var.cpu) * 1e6;
    console.log(`batch ${batch}  decode step (CPU time): plain ${pad(stepPlain, 1)} µs, VAR adds ${pad(stepVar - stepPlain, 1)} µs (${((stepVar - stepPlain) / added).toFixed(2)} µs per added node, its feeds included)`);
  }
  if (!WIDE) return;

  // The wide random LLaVA: the language model of the ACT comparison, a small tower, random pixels.
  const synthetic = syntheticLlava();
  const rng = RowRng.fromSeed(11);
  const randomPixels = Float32Array.from({ length: synthetic.imageSize }, () => rng.nextUniform() * 2 - 1);
  const widePrompt = imagePrompt(text, 8, 104, { pixels: randomPixels, key: 'random' }, SYNTHETIC_IMAGE_TOKEN);
  // Random weights have no planted massive dims: two dims and a low τ make φ cross τ on some tokens,
  // and every op of the fragments runs whatever they find.
  const wideProfile: ModelProfile = { var: { sink_dims: [0, 1], tau: 2.5 } };
  const { dim, nLayers } = synthetic.weights.config;
  const wide = await setUp('synthetic-llava', synthetic.weights, synthetic.vision, tokenizer, wideProfile, widePrompt, [varCalibrator as AnyCalibrator]);
  const w = await compare(wide, WIDE_DECODE_TOKENS);
  console.log(`\nVAR on a random LLaVA (language model dim ${dim}, ${nLayers} layers, 25M parameters; VAR layers 2..${nLayers - 2}); ${widePrompt.ids.length}-token prompt with one random image; ` +
    `decode ${WIDE_DECODE_TOKENS} tokens; ${found(await wide.probe())} (target: decode ratio ≥ 0.9):`);
  for (const r of w.rows) console.log(r);
  const wideNodes = await nodeCounts(wide.engine);
  console.log(`graph nodes: plain ${wideNodes.plain}, with VAR ${wideNodes.calibrated} (+${wideNodes.calibrated - wideNodes.plain} in ${nLayers - 2} compiled layers)`);

  const served = await setUp('synthetic-llava', synthetic.weights, synthetic.vision, tokenizer, wideProfile, widePrompt, CALIBRATORS);
  const s = await compare(served, WIDE_DECODE_TOKENS, true);
  const servedNodes = await nodeCounts(served.engine);
  console.log(`the same in a served engine (every calibrator registered; VAR rows run the graph for {var}, ${servedNodes.calibrated - servedNodes.plain} nodes added):`);
  for (const r of s.rows) console.log(r);
}
