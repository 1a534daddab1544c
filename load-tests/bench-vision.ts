/**
 * `npm run bench:vision`: what the vision path costs per image, all figures from one run, side by side.
 *   - preprocessing: decode (sharp, on libuv's pool) and resize → crop → normalise (on the calling
 *     thread), for a tiny-llava fixture and photos of three sizes preprocessed for LLaVA-1.5 (336 px),
 *     one image at a time and four at once;
 *   - encoder: the vision graph in onnxruntime at batch 1 and 4, on tiny-llava and on a seeded random
 *     tower of CLIP ViT-L/14-336 shape (LLaVA-1.5's: 24 layers, width 1024, 577 tokens, features from
 *     hidden state −2, projector to 4096) built in memory.
 *   - ttft: time to first token over real HTTP (a streamed chat to a server on loopback around a real
 *     engine worker) of an image chat beside a text-only chat of the same prompt token count, on
 *     tiny-llava, alternating, so the difference is what the image costs: preprocessing, the encoder
 *     call and the splice.
 *
 * Env: BENCH_MODEL (default tiny-llava), BENCH_SECTIONS (comma list of section ids, default all),
 * BENCH_THREADS (ORT intra-op threads, default 1 like the engine's --threads), BENCH_REPEATS (runs per
 * tiny figure, default 40; medians are printed), BENCH_WIDE=0 skips the ViT-L tower (it needs about
 * 6 GB of memory and two minutes).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseImageProcessorConfig, type ImagePreprocessing } from '../models/checkpoint/image-processor-config.js';
import { loadLlavaVision, type LlavaVision } from '../models/checkpoint/llava-vision.js';
import { visionSeqLen, type VisionWeights } from '../models/checkpoint/vision-weights.js';
import { compileVision } from '../models/compiler/vision-graph.js';
import { resolveModel } from '../models/resolve.js';
import { decodeImage } from '../src/api/images/decode.js';
import { preprocessImage, preprocessRgb } from '../src/api/images/preprocess.js';
import { VisionSession } from '../src/engine/vision-session.js';
import { loadModelAssets } from '../src/api/model-assets.js';
import { EngineClient } from '../src/engine/engine-client.js';
import { buildServer } from '../src/server.js';
import type { AddressInfo } from 'node:net';
import { machineHeader, median } from './report.js';
import { CLIP_VIT_L_336, syntheticVision } from './synthetic-vision.js';

const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 40);
const WIDE = process.env.BENCH_WIDE !== '0';
const LIMITS = { maxImageBytes: 64 * 2 ** 20, maxImagePixels: 4096 * 4096 };

interface BenchContext {
  tiny: LlavaVision;
  tinyDir: string;
}

interface BenchSection {
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<void>;
}

const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Median of `rounds` timings of `fn`, after one untimed warm-up call. */
async function medianMs(rounds: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) times.push(await timeMs(fn));
  return median(times);
}

/** A photo-like JPEG: smooth gradients with some texture, so its coding and decoding cost is realistic. */
async function photoJpeg(width: number, height: number): Promise<Buffer> {
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const texture = ((x * 7919 + y * 104729) % 31) - 15;
      rgb[o] = Math.max(0, Math.min(255, (x * 255) / width + texture));
      rgb[o + 1] = Math.max(0, Math.min(255, (y * 255) / height + texture));
      rgb[o + 2] = Math.max(0, Math.min(255, 128 + 100 * Math.sin((x + y) / 40) + texture));
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

const preprocessing: BenchSection = {
  id: 'preprocess',
  title: 'preprocessing per image (decode | resize+crop+normalise | whole, one at a time | whole, four at once)',
  async run({ tiny, tinyDir }) {
    const llava15 = parseImageProcessorConfig({ size: { shortest_edge: 336 }, crop_size: { height: 336, width: 336 } });
    const cases: [string, Buffer, ImagePreprocessing][] = [
      ['tiny-llava fixture 32x32 PNG → 32', await readFile(join(tinyDir, 'images', 'checker.png')), tiny.preprocessing],
      ['640x480 JPEG → 336', await photoJpeg(640, 480), llava15],
      ['1920x1080 JPEG → 336', await photoJpeg(1920, 1080), llava15],
      ['4032x3024 JPEG (12 MP) → 336', await photoJpeg(4032, 3024), llava15],
    ];
    console.log(`  ${'image'.padEnd(32)} ${'decode'.padStart(10)} ${'transform'.padStart(10)} ${'batch 1'.padStart(10)} ${'batch 4'.padStart(10)}`);
    for (const [name, bytes, p] of cases) {
      const rounds = bytes.length > 1e6 ? 5 : Math.min(REPEATS, 20);
      const decoded = await decodeImage(bytes, 'bench', LIMITS);
      const decode = await medianMs(rounds, () => decodeImage(bytes, 'bench', LIMITS));
      const transform = await medianMs(rounds, async () => preprocessRgb(decoded, p));
      const one = await medianMs(rounds, () => preprocessImage(bytes, p, { param: 'bench', limits: LIMITS }));
      const four = (await medianMs(rounds, () => Promise.all(Array.from({ length: 4 }, () => preprocessImage(bytes, p, { param: 'bench', limits: LIMITS }))))) / 4;
      console.log(`  ${name.padEnd(32)} ${ms(decode).padStart(10)} ${ms(transform).padStart(10)} ${ms(one).padStart(10)} ${ms(four).padStart(10)}`);
    }
  },
};

/** Per-image encoder time at batch 1 and 4, in one session. */
async function encoderRow(name: string, weights: VisionWeights, rounds: number): Promise<void> {
  const t0 = performance.now();
  const graph = compileVision(weights);
  const compileMs = performance.now() - t0;
  const t1 = performance.now();
  const session = await VisionSession.create(graph, { intraOpThreads: THREADS });
  const sessionMs = performance.now() - t1;
  try {
    const image = () => Float32Array.from({ length: session.pixelsPerImage }, (_, i) => Math.sin(i * 0.37));
    const one = [image()];
    const four = Array.from({ length: 4 }, image);
    const batch1 = await medianMs(rounds, () => session.run(one));
    const batch4 = (await medianMs(Math.max(1, Math.ceil(rounds / 2)), () => session.run(four))) / 4;
    const c = weights.config;
    console.log(
      `  ${name.padEnd(30)} ${String(visionSeqLen(c)).padStart(6)} ${String(graph.blocksComputed).padStart(7)} ${ms(batch1).padStart(11)} ${ms(batch4).padStart(11)} ${(batch4 / batch1).toFixed(2).padStart(7)}` +
        `   (compile ${ms(compileMs)}, ${(graph.bytes.length / 2 ** 20).toFixed(0)} MiB graph, session ${ms(sessionMs)})`,
    );
  } finally {
    await session.release();
  }
}

const encoder: BenchSection = {
  id: 'encoder',
  title: `encoder per image, ORT CPU, ${THREADS} intra-op thread(s)`,
  async run({ tiny }) {
    console.log(`  ${'tower'.padEnd(30)} ${'tokens'.padStart(6)} ${'blocks'.padStart(7)} ${'batch 1'.padStart(11)} ${'batch 4'.padStart(11)} ${'4 / 1'.padStart(7)}`);
    await encoderRow('tiny-llava', tiny.weights, REPEATS);
    if (!WIDE) {
      console.log('  CLIP ViT-L/14-336 skipped (BENCH_WIDE=0)');
      return;
    }
    const t0 = performance.now();
    const vitL = syntheticVision(CLIP_VIT_L_336);
    console.log(`  (random ViT-L/14-336 weights built in ${ms(performance.now() - t0)})`);
    await encoderRow('random CLIP ViT-L/14-336', vitL, 3);
  },
};

// The time-to-first-token comparison (image chat vs text-only chat of the same token count) joins here.
/** Milliseconds from sending a streamed chat to its first chunk that carries a token. */
async function streamedTtft(url: string, body: Record<string, unknown>): Promise<{ ms: number; promptTokens: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, return_token_ids: true, max_tokens: 4, temperature: 0 }),
  });
  if (!res.ok || !res.body) throw new Error(`chat failed: ${res.status} ${await res.text()}`);
  let first: number | null = null;
  let promptTokens = 0;
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    for (const line of decoder.decode(bytes as Uint8Array, { stream: true }).split('\n')) {
      if (!line.startsWith('data: {')) continue;
      const chunk = JSON.parse(line.slice(6)) as { prompt_token_ids?: number[]; choices: { token_ids?: number[] }[] };
      if (chunk.prompt_token_ids) promptTokens = chunk.prompt_token_ids.length;
      if (first === null && chunk.choices.some((c) => c.token_ids?.length)) first = performance.now() - t0;
    }
  }
  if (first === null) throw new Error('the stream carried no token');
  return { ms: first, promptTokens };
}

const ttft: BenchSection = {
  id: 'ttft',
  title: 'time to first token over HTTP, tiny-llava: an image chat beside a text-only chat of the same prompt length (streamed, 1 engine thread)',
  async run(ctx) {
    const model = await resolveModel('tiny-llava');
    const engine = await EngineClient.start({ model, engine: { threads: THREADS } });
    const app = buildServer({ logLevel: 'silent' }, { engine, ...(await loadModelAssets(model)) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const png = await readFile(join(ctx.tinyDir, 'images', 'half_bright.png'));
      const imageChat = {
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }, { type: 'text', text: 'What is in the picture?' }] }],
      };
      const { promptTokens } = await streamedTtft(url, imageChat);
      // A text-only prompt of the same length: words added until the rendered prompt has as many tokens.
      let words = 1;
      let textChat = { messages: [{ role: 'user', content: 'the' }] };
      while ((await streamedTtft(url, textChat)).promptTokens < promptTokens) textChat = { messages: [{ role: 'user', content: 'the '.repeat(++words).trim() }] };
      const text = (await streamedTtft(url, textChat)).promptTokens;
      const image: number[] = [], plain: number[] = [];
      for (let i = 0; i < REPEATS; i++) {
        image.push((await streamedTtft(url, imageChat)).ms);
        plain.push((await streamedTtft(url, textChat)).ms);
      }
      const a = median(image), b = median(plain);
      console.log(`  image chat, ${promptTokens} prompt tokens (16 from the image): ${ms(a)} median of ${REPEATS}`);
      console.log(`  text-only chat, ${text} prompt tokens:                  ${ms(b)}`);
      console.log(`  image ÷ text: ${(a / b).toFixed(2)}×, +${ms(a - b)} for the image (decode, preprocess, encode, splice)`);
    } finally {
      await app.close();
      await engine.close();
    }
  },
};

const SECTIONS: BenchSection[] = [preprocessing, encoder, ttft];

async function main(): Promise<void> {
  const wanted = process.env.BENCH_SECTIONS?.split(',').map((s) => s.trim());
  const model = await resolveModel(process.env.BENCH_MODEL ?? 'tiny-llava');
  const ctx: BenchContext = { tiny: await loadLlavaVision(model.dir), tinyDir: model.dir };
  console.log(machineHeader('bench:vision'));
  for (const section of SECTIONS) {
    if (wanted && !wanted.includes(section.id)) continue;
    console.log(`\n${section.title}`);
    await section.run(ctx);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
