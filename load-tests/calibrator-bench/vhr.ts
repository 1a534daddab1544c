/**
 * VHR's section of `npm run bench:calibrators`: what a request with VHR costs against the same
 * request without it, side by side in one process, on tiny-llava and on the wide random LLaVA
 * (load-tests/synthetic-llava.ts), at batch 1 and 8:
 *  - time to first token: submit → first token of each row (the image encode, VHR's text-only
 *    prepass, and the with-image prefill that selects the heads);
 *  - decode tokens/s after the first token (the fragment's per-step cost with the heads frozen).
 * Plain and VHR runs alternate in pairs; a pair's ratio compares neighbouring runs, which share the
 * machine's load, so the median of the pairs' ratios is printed with their range, and the best run of
 * each side against the other's (the least disturbed figures). Each figure is given by the wall clock
 * and by the process's CPU time, which a busy shared machine disturbs far less. Images are random pixels; prompts are
 * BOS, a few text tokens, one image's tokens, then more text.
 * Only VHR is registered, so the figures are its own; a served engine registers every calibrator but
 * runs a VHR row on the graph compiled for {vhr}, so they are the served figures too. The node count of
 * a graph with every calibrator compiled in is printed beside it, for scale.
 */
import { resolveModel } from '../../models/resolve.js';
import { loadDecoderWeights } from '../../models/load-decoder.js';
import { loadLlavaVision, type LlavaVision } from '../../models/checkpoint/llava-vision.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { AnyCalibrator } from '../../calibrators/calibrator.js';
import { CALIBRATORS } from '../../calibrators/index.js';
import { vhr, type VhrConfig } from '../../calibrators/vhr.js';
import { EngineCore, type EngineModel } from '../../src/engine/engine-core.js';
import { EngineOptionsSchema } from '../../src/engine/engine-options.js';
import { buildEngineModel } from '../../src/engine/load-engine-model.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';
import type { EngineEvent, GenerationRequest } from '../../src/engine/types.js';
import { RowRng } from '../../src/engine/sampling/rng.js';
import { syntheticLlava } from '../synthetic-llava.js';
import { median } from '../report.js';

const BATCHES = [1, 8];
/** Text tokens before and after the image (LLaVA-1.5's "USER: <image>\n{question} ASSISTANT:" is about this split). */
const TEXT_BEFORE = 4;
const TEXT_AFTER = 28;

export interface VhrBenchOptions {
  repeats: number;
  /** Tokens decoded per decode run. */
  decodeTokens: number;
  /** Also measure the wide random LLaVA. */
  wide: boolean;
}

const pad = (x: number, digits = 0) => x.toFixed(digits).padStart(7);

/**
 * One run's figure by the wall clock, and by this process's CPU time: on a shared machine the second
 * leaves out the time other processes took the cores (the engine runs ORT on one thread, in process).
 */
interface Measure {
  wall: number;
  cpu: number;
}

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};

/** Figures from one pair of alternating runs (plain, then VHR). */
interface Pair {
  plain: number;
  vhr: number;
}

/** Per-pair ratios (neighbouring runs share the machine's load), and the best run of each side. */
function summarise(pairs: Pair[], better: 'lower' | 'higher'): { median: number; lo: number; hi: number; best: number; plain: number; vhr: number } {
  const ratios = pairs.map((p) => p.vhr / p.plain);
  const pick = better === 'lower' ? Math.min : Math.max;
  const plain = pick(...pairs.map((p) => p.plain)), vhr = pick(...pairs.map((p) => p.vhr));
  return { median: median(ratios), lo: Math.min(...ratios), hi: Math.max(...ratios), best: vhr / plain, plain, vhr };
}

class VhrBench {
  private readonly core: EngineCore;
  private readonly firstTokenAt = new Map<string, number>();
  private readonly done = new Set<string>();
  private readonly rng = RowRng.fromSeed(11);
  private seq = 0;

  constructor(readonly engine: EngineModel, private readonly cfg: VhrConfig, private readonly promptIds: number[], private readonly imagePixels: number) {
    // Room for 8 requests with their prepasses at once.
    this.core = new EngineCore(engine, EngineOptionsSchema.parse({ maxBatch: 16, prefillChunk: 512, maxPrefillTokensPerStep: 4096 }), (events: EngineEvent[]) => {
      const now = performance.now();
      for (const e of events) {
        if (e.type === 'tokens' && e.tokenIds.length && !this.firstTokenAt.has(e.id)) this.firstTokenAt.set(e.id, now);
        if (e.type === 'finish' || e.type === 'error') this.done.add(e.id);
        if (e.type === 'error') throw new Error(`bench request failed: ${e.message}`);
      }
    });
  }

  private submit(withVhr: boolean, maxTokens: number): string {
    const id = `r${this.seq++}`;
    const pixels = Float32Array.from({ length: this.imagePixels }, () => this.rng.nextUniform() * 2 - 1);
    const req: GenerationRequest = {
      id,
      promptIds: this.promptIds,
      images: { spans: [{ image: 0, start: 1 + TEXT_BEFORE, length: this.promptIds.filter((t) => t === 0).length }], inputs: [{ pixels, key: id }] },
      sampling: { ...GREEDY_DEFAULTS, maxTokens, ignoreEos: true },
      calibration: withVhr ? { vhr: this.cfg } : {},
    };
    this.core.submit(req);
    return id;
  }

  private async stepUntil(done: () => boolean): Promise<void> {
    while (!done()) await this.core.step();
  }

  /**
   * `batch` requests submitted together: the median over rows of submit → first token (ms), and the
   * process CPU time until every row has its first token (ms).
   */
  async ttft(batch: number, withVhr: boolean): Promise<Measure> {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const ids = Array.from({ length: batch }, () => this.submit(withVhr, 1));
    await this.stepUntil(() => ids.every((id) => this.done.has(id)));
    return { wall: median(ids.map((id) => this.firstTokenAt.get(id)! - t0)), cpu: cpuMs(c0) };
  }

  /** `batch` requests decoding together: aggregate tokens per wall second and per CPU second after every row's first token. */
  async decode(batch: number, withVhr: boolean, tokens: number): Promise<Measure> {
    const ids = Array.from({ length: batch }, () => this.submit(withVhr, tokens));
    await this.stepUntil(() => ids.every((id) => this.firstTokenAt.has(id)));
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await this.stepUntil(() => ids.every((id) => this.done.has(id)));
    const generated = batch * (tokens - 1);
    return { wall: generated / ((performance.now() - t0) / 1000), cpu: generated / (cpuMs(c0) / 1000) };
  }
}

/** BOS, text, the image's placeholder tokens (id 0), text; text ids avoid 0 and the stop ids. */
function benchPrompt(tokensPerImage: number, vocab: number): number[] {
  const rng = RowRng.fromSeed(5);
  const text = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(rng.nextUniform() * (vocab - 3)));
  return [1, ...text(TEXT_BEFORE), ...new Array<number>(tokensPerImage).fill(0), ...text(TEXT_AFTER)];
}

async function benchModel(title: string, parts: { weights: DecoderWeights; vision: LlavaVision; tokenizer: Tokenizer; imagePixels: number }, opts: VhrBenchOptions): Promise<void> {
  const build = (calibrators: readonly AnyCalibrator[]) => buildEngineModel({
    name: title, weights: parts.weights, vision: parts.vision, tokenizer: parts.tokenizer, profile: {}, calibrators, options: { threads: 1, providers: [], plainFastPath: true },
  });
  const engine = await build([vhr as AnyCalibrator]);
  const cfg = vhr.resolve(true, engine.facts);
  const tokensPerImage = engine.facts.vision!.tokensPerImage;
  const prompt = benchPrompt(tokensPerImage, parts.weights.config.vocabSize);
  const bench = new VhrBench(engine, cfg, prompt, parts.imagePixels);
  const { nLayers: L, nHeads: H } = parts.weights.config;

  await bench.decode(8, false, 8); // warm-up
  await bench.decode(8, true, 8);
  const ttftRepeats = opts.repeats * 3;
  console.log(`\n${title}: VHR (alpha ${cfg.alpha}, layers ${cfg.layers.join(',')} of ${L}, ${H} heads) vs plain, one image per request`);
  console.log(`prompt ${prompt.length} tokens = ${prompt.length - tokensPerImage} text + ${tokensPerImage} image tokens (the text-only prepass prefills ${prompt.length - tokensPerImage}); ` +
    `TTFT over ${ttftRepeats} and decode (${opts.decodeTokens} tokens) over ${opts.repeats} alternating pairs: median of the pairs' ratios [their range], and best run against best run; ` +
    `"prefill CPU" is the process's CPU time until every row has its first token, "decode per CPU s" tokens per second of CPU time`);
  const alternate = async (n: number, run: (withVhr: boolean) => Promise<Measure>): Promise<{ wall: Pair[]; cpu: Pair[] }> => {
    const wall: Pair[] = [], cpu: Pair[] = [];
    for (let i = 0; i < n; i++) {
      const [plain, withVhr] = [await run(false), await run(true)];
      wall.push({ plain: plain.wall, vhr: withVhr.wall });
      cpu.push({ plain: plain.cpu, vhr: withVhr.cpu });
    }
    return { wall, cpu };
  };
  const line = (what: string, unit: string, digits: number, s: ReturnType<typeof summarise>, target: string) =>
    `${what.padEnd(22)} plain ${pad(s.plain, digits)} ${unit.padEnd(5)} VHR ${pad(s.vhr, digits)} ${unit.padEnd(5)} ratio ${s.median.toFixed(3)} [${s.lo.toFixed(2)}–${s.hi.toFixed(2)}], best ${s.best.toFixed(3)} (target ${target})`;
  for (const batch of BATCHES) {
    const t = await alternate(ttftRepeats, (v) => bench.ttft(batch, v));
    console.log(line(`batch ${batch}  TTFT`, 'ms', 2, summarise(t.wall, 'lower'), '≤ 2.1'));
    console.log(line(`batch ${batch}  prefill CPU`, 'ms', 2, summarise(t.cpu, 'lower'), '≤ 2.1'));
    const d = await alternate(opts.repeats, (v) => bench.decode(batch, v, opts.decodeTokens));
    console.log(line(`batch ${batch}  decode`, 'tok/s', 0, summarise(d.wall, 'higher'), '≥ 0.9'));
    console.log(line(`batch ${batch}  decode per CPU s`, 'tok', 0, summarise(d.cpu, 'higher'), '≥ 0.9'));
  }
  const [plainGraph, vhrGraph] = await Promise.all([engine.graphs.sessionFor([]), engine.graphs.sessionFor(['vhr'])]);
  const all = await (await build(CALIBRATORS)).graphs.sessionFor(CALIBRATORS.map((c) => c.id));
  console.log(`graph nodes: plain ${plainGraph.graph.nodeCount}, with VHR ${vhrGraph.graph.nodeCount} (+${vhrGraph.graph.nodeCount - plainGraph.graph.nodeCount} in ${L} layers, ` +
    `counting the selection branches that only a selecting prefill runs), with every calibrator compiled in (${CALIBRATORS.map((c) => c.id).join(', ')}) ${all.graph.nodeCount}`);
}

export async function benchVhr(opts: VhrBenchOptions): Promise<void> {
  const tiny = await resolveModel('tiny-llava');
  const weights = await loadDecoderWeights(tiny);
  await benchModel('tiny-llava', {
    weights, vision: await loadLlavaVision(tiny.dir), tokenizer: await loadTokenizer(tiny, { vocabSize: weights.config.vocabSize }), imagePixels: 3 * 32 * 32,
  }, opts);
  if (!opts.wide) return;
  const wide = syntheticLlava();
  const c = wide.weights.config;
  const params = c.nLayers * (4 * c.dim * c.dim + 3 * c.dim * c.hiddenDim) + c.vocabSize * c.dim;
  await benchModel(`random LLaVA, ${(params / 1e6).toFixed(1)}M-parameter decoder (dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads} heads)`, {
    weights: wide.weights, vision: wide.vision, tokenizer: await loadTokenizer(tiny, { vocabSize: c.vocabSize }), imagePixels: wide.imageSize,
  }, { ...opts, decodeTokens: Math.min(opts.decodeTokens, 64) });
}
