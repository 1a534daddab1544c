/**
 * Generates the synthetic image task for tiny-llava (`items.jsonl` and `images/`), deterministically
 * from a seed: 60 two-choice questions about 32×32 images made of bright and dark 8×8 patches (the
 * tower's patch size, so "bright" means the patches the fixture's projector turns into visual sinks):
 * - 20 "bright or dark" (12 of the 16 patches bright, or 4: every image has visual sinks and
 *   non-sinks, so VAR has something to move in every item);
 * - 20 "left or right" (one half bright);
 * - 20 "top or bottom" (one half bright).
 * Each image gets its own tint and pixel noise. Run `node dist/models/eval/tiny-llava-images/generate.js [DIR]`
 * (default: this folder in the source tree) to rebuild it; test/eval/image-eval.test.ts checks that
 * the shipped files are what this produces.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const SIZE = 32;
const PATCH = 8;
const PER_KIND = 20;
const SEED = 20261204;

/** mulberry32: a small seeded PRNG, enough for noise. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'brightness' | 'horizontal' | 'vertical';

interface Item {
  image: string;
  prompt: string;
  choices: string[];
  answer: number;
}

const QUESTIONS: Record<Kind, { prompt: string; choices: [string, string] }> = {
  brightness: { prompt: 'Is the picture bright or dark?', choices: [' bright', ' dark'] },
  horizontal: { prompt: 'Which half of the picture is bright, the left or the right?', choices: [' left', ' right'] },
  vertical: { prompt: 'Which half of the picture is bright, the top or the bottom?', choices: [' top', ' bottom'] },
};

const SIDE = SIZE / PATCH;

/** Which of the 16 patches are bright, for this kind and answer. */
function brightPatches(kind: Kind, answer: number, rand: () => number): Set<number> {
  const all = Array.from({ length: SIDE * SIDE }, (_, i) => i);
  if (kind === 'brightness') {
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return new Set(all.slice(0, answer === 0 ? 12 : 4));
  }
  const half = SIDE / 2;
  const inFirstHalf = (i: number) => (kind === 'horizontal' ? i % SIDE : Math.floor(i / SIDE)) < half;
  return new Set(all.filter((i) => inFirstHalf(i) === (answer === 0)));
}

function pixels(kind: Kind, answer: number, rand: () => number): Buffer {
  const bright = brightPatches(kind, answer, rand);
  const tint = [0, 1, 2].map(() => 0.75 + 0.25 * rand());
  const dark = [0, 1, 2].map(() => Math.floor(10 + 50 * rand()));
  const out = Buffer.alloc(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const on = bright.has(Math.floor(y / PATCH) * SIDE + Math.floor(x / PATCH));
      for (let c = 0; c < 3; c++) {
        const base = on ? 255 * tint[c]! : dark[c]!;
        out[(y * SIZE + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base + (rand() - 0.5) * 8)));
      }
    }
  }
  return out;
}

/** Writes `items.jsonl` and `images/*.png` into `dir`; returns the items. */
export async function generate(dir: string): Promise<Item[]> {
  const rand = prng(SEED);
  await mkdir(join(dir, 'images'), { recursive: true });
  const items: Item[] = [];
  for (const kind of Object.keys(QUESTIONS) as Kind[]) {
    for (let k = 0; k < PER_KIND; k++) {
      const answer = k % 2;
      const file = `images/${kind}-${String(k).padStart(2, '0')}.png`;
      const png = await sharp(pixels(kind, answer, rand), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer();
      await writeFile(join(dir, file), png);
      items.push({ image: file, prompt: QUESTIONS[kind].prompt, choices: [...QUESTIONS[kind].choices], answer });
    }
  }
  await writeFile(join(dir, 'items.jsonl'), `${items.map((i) => JSON.stringify(i)).join('\n')}\n`);
  return items;
}

// dist/models/eval/tiny-llava-images/generate.js → models/eval/tiny-llava-images/ in the source tree.
const sourceDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'models', 'eval', 'tiny-llava-images');
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? sourceDir;
  generate(dir).then((items) => console.log(`wrote ${items.length} items to ${dir}`), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
