/**
 * PAINT's section of `npm run bench:calibrators`: what the edit and the guidance stream cost,
 * measured side by side with plain image requests in one run, on tiny-llava and on the wide random
 * LLaVA (load-tests/synthetic-llava.ts). Per model, at batch 1 and 8: decode tokens/s (the main rows'
 * tokens; a guided request also decodes its companion) and prefill tokens/s of a one-image prompt, for
 * plain, PAINT (edit only) and PAINT with guidance, as ratios against plain; and guidance's cost
 * factor, the decode step time with guidance over without (2 would be exactly twice the work).
 *
 * The engine is built with PAINT as its only calibrator; a served engine registers them all but runs
 * a PAINT row on the graph compiled for {paint}, so these are the served figures too. Images are random
 * pixels; each variant runs in turn within every repeat, so machine noise hits them alike.
 */
import { resolveModel } from '../../models/resolve.js';
import { loadDecoderWeights } from '../../models/load-decoder.js';
import { loadLlavaVision, type LlavaVision } from '../../models/checkpoint/llava-vision.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { EngineCore } from '../../src/engine/engine-core.js';
import { EngineOptionsSchema } from '../../src/engine/engine-options.js';
import { buildEngineModel } from '../../src/engine/load-engine-model.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { paint, type PaintConfig } from '../../calibrators/paint.js';
import type { EngineEvent, GenerationRequest, ImageSpan } from '../../src/engine/types.js';
import { RowRng } from '../../src/engine/sampling/rng.js';
import { syntheticLlava } from '../synthetic-llava.js';
import { median } from '../report.js';

export interface PaintBenchOptions {
  repeats: number;
  /** Decode tokens per request on tiny-llava; the wide model decodes `wideDecodeTokens`. */
  decodeTokens: number;
  wideDecodeTokens: number;
  /** Also the wide random LLaVA. */
  wide: boolean;
  log: (line: string) => void;
}

const VARIANTS = ['plain', 'paint', 'guided'] as const;
type Variant = (typeof VARIANTS)[number];
const BATCHES = [1, 8];
const PREFILL_ROUNDS = 10;

interface Prompt {
  ids: number[];
  spans: ImageSpan[];
}

/** BOS, "USER: ", the image's tokens, the question: a LLaVA-1.5-style one-image prompt. */
function imagePrompt(tokenizer: Tokenizer, vision: LlavaVision): Prompt {
  const before = tokenizer.encode('USER: ', { addBos: true });
  const after = tokenizer.encode('\nDescribe the image in detail. ASSISTANT:', { addBos: false });
  const n = vision.spec.imageSeqLength;
  return { ids: [...before, ...new Array<number>(n).fill(vision.spec.imageTokenId), ...after], spans: [{ image: 0, start: before.length, length: n }] };
}

function randomPixels(size: number, seed: number): Float32Array {
  const rng = RowRng.fromSeed(seed);
  return Float32Array.from({ length: size }, () => rng.nextUniform() * 2 - 1);
}

interface Bench {
  decodeRate(variant: Variant, batch: number, tokens: number): Promise<number>;
  prefillRate(variant: Variant, batch: number): Promise<number>;
}

async function setUp(name: string, weights: DecoderWeights, vision: LlavaVision, tokenizer: Tokenizer): Promise<Bench> {
  const engine = await buildEngineModel({
    name, weights, vision, tokenizer, profile: {}, calibrators: [paint as AnyCalibrator], options: { threads: 1, providers: [], plainFastPath: true },
  });
  const configs: Record<Exclude<Variant, 'plain'>, PaintConfig> = {
    paint: paint.resolve(true, engine.facts),
    guided: paint.resolve({ guidance: true }, engine.facts),
  };
  const prompt = imagePrompt(tokenizer, vision);
  const pixels = randomPixels(3 * vision.weights.config.imageSize ** 2, 11);
  const done = new Set<string>();
  const core = new EngineCore(engine, EngineOptionsSchema.parse({ maxBatch: 16, prefillChunk: 512 }), (events: EngineEvent[]) => {
    for (const e of events) {
      if (e.type === 'error') throw new Error(`bench request ${e.id} failed: ${e.message}`);
      if (e.type === 'finish') done.add(e.id);
    }
  });
  let seq = 0;
  const submit = (variant: Variant, batch: number, maxTokens: number): string[] =>
    Array.from({ length: batch }, () => {
      const r: GenerationRequest = {
        id: `r${seq++}`,
        promptIds: prompt.ids,
        images: { spans: prompt.spans, inputs: [{ pixels, key: 'bench' }] },
        sampling: { ...GREEDY_DEFAULTS, maxTokens, ignoreEos: true },
        calibration: variant === 'plain' ? {} : { paint: configs[variant] },
      };
      core.submit(r);
      return r.id;
    });
  const drain = async (ids: string[]) => {
    while (!ids.every((id) => done.has(id))) await core.step();
  };
  return {
    /** Main-row decode tokens/s for `batch` requests decoding together (encode and prefill excluded). */
    async decodeRate(variant, batch, tokens) {
      const ids = submit(variant, batch, tokens);
      await core.step(); // encode, the batched prefill and each row's first token
      const t0 = performance.now();
      await drain(ids);
      return (batch * (tokens - 1)) / ((performance.now() - t0) / 1000);
    },
    /**
     * Prompt tokens/s: `batch` requests encoded and prefilled in one step (the image encoder included),
     * over PREFILL_ROUNDS rounds, since one round of a short prompt takes a few milliseconds.
     */
    async prefillRate(variant, batch) {
      const t0 = performance.now();
      for (let i = 0; i < PREFILL_ROUNDS; i++) await drain(submit(variant, batch, 1));
      return (PREFILL_ROUNDS * batch * prompt.ids.length) / ((performance.now() - t0) / 1000);
    },
  };
}

/** Medians over repeats, the variants run in turn within each repeat. */
async function roundRobin(repeats: number, run: (v: Variant) => Promise<number>): Promise<Record<Variant, number>> {
  const seen: Record<Variant, number[]> = { plain: [], paint: [], guided: [] };
  for (let i = 0; i < repeats; i++) for (const v of VARIANTS) seen[v].push(await run(v));
  return { plain: median(seen.plain), paint: median(seen.paint), guided: median(seen.guided) };
}

const pad = (x: number) => x.toFixed(0).padStart(7);

async function benchModel(title: string, bench: Bench, tokens: number, opts: PaintBenchOptions): Promise<void> {
  for (const v of VARIANTS) await bench.decodeRate(v, 8, tokens); // warm-up
  opts.log(title);
  for (const batch of BATCHES) {
    const dec = await roundRobin(opts.repeats, (v) => bench.decodeRate(v, batch, tokens));
    const pre = await roundRobin(opts.repeats, (v) => bench.prefillRate(v, batch));
    opts.log(`batch ${batch}  decode  plain ${pad(dec.plain)} tok/s   PAINT ${pad(dec.paint)} (ratio ${(dec.paint / dec.plain).toFixed(3)})   ` +
      `PAINT+guidance ${pad(dec.guided)} (ratio ${(dec.guided / dec.plain).toFixed(3)})   guidance cost factor ${(dec.paint / dec.guided).toFixed(2)}x`);
    opts.log(`batch ${batch}  prefill plain ${pad(pre.plain)} tok/s   PAINT ${pad(pre.paint)} (ratio ${(pre.paint / pre.plain).toFixed(3)})   ` +
      `PAINT+guidance ${pad(pre.guided)} (ratio ${(pre.guided / pre.plain).toFixed(3)})`);
  }
}

export async function benchPaint(opts: PaintBenchOptions): Promise<void> {
  const tiny = await resolveModel('tiny-llava');
  const weights = await loadDecoderWeights(tiny);
  const tokenizer = await loadTokenizer(tiny, { vocabSize: weights.config.vocabSize });
  const vision = await loadLlavaVision(tiny.dir);
  const tinyBench = await setUp('tiny-llava', weights, vision, tokenizer);
  const L = weights.config.nLayers;
  opts.log('');
  opts.log(`PAINT (α 0.7, β 0.4, local 25 %, layers 2..${L - 1}, edit at prefill), with and without guidance (γ 1.1, cutoff 0.1), against plain image requests`);
  opts.log(`(medians of ${opts.repeats} runs taken in turn; decode from a ${imagePrompt(tokenizer, vision).ids.length}-token one-image prompt; cost factor = PAINT decode step time with guidance ÷ without)`);
  await benchModel(`tiny-llava (stories260K + a 16-token CLIP tower), decode ${opts.decodeTokens} tokens:`, tinyBench, opts.decodeTokens, opts);
  if (!opts.wide) return;
  const wide = syntheticLlava();
  const c = wide.weights.config;
  const wideBench = await setUp('synthetic-llava', wide.weights, wide.vision, tokenizer);
  await benchModel(`random LLaVA (dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads} heads, 16 image tokens; PAINT in layers 2..${c.nLayers - 1}), decode ${opts.wideDecodeTokens} tokens:`,
    wideBench, opts.wideDecodeTokens, opts);
}
