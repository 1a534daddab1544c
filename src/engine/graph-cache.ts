/**
 * The on-disk cache of compiled models, so a second start of the same model skips reading the
 * checkpoint, quantizing, pre-packing and compiling:
 *
 *   <cache>/<name>-<part>-<format>-<key>/weights.bin, weights.json   a weight store (models/onnx/weight-store.ts)
 *   <cache>/<name>-<part>-<format>-<key>/graph-<set>.onnx, .json     one compiled graph per fragment set
 *
 * (`part` is the served-weights set: the decoder's, a vision tower's.)
 *
 * The store's key covers the weights' content hash, the part, the weight format, the code that encodes and
 * packs weights, the onnxruntime version and the CPU's instruction set (pre-packed layouts differ
 * between AVX2 and AVX-512). A graph's key covers the compiler's code and the fragment set. Entries
 * are built in a temporary folder or file and renamed into place, so a crash or a concurrent start
 * never leaves a half-written entry; nothing is ever modified in place once published (sessions map
 * these files).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, homedir, hostname } from 'node:os';
import { basename, join } from 'node:path';
import ort from 'onnxruntime-node';
import type { WeightFormat } from '../../models/onnx/weight-format.js';
import { readStoreIndex, storeWeights, writeStoreIndex, writeWeightStore, type WeightStoreIndex } from '../../models/onnx/weight-store.js';
import type { ServedWeights, WeightProvider } from '../../models/onnx/weights.js';
import type { LoadTimes } from './load-times.js';
import { prepackWeightStore } from './weight-prepack.js';

export function defaultCompiledCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env.ATTUNE_COMPILED_CACHE || join(homedir(), '.cache', 'attune', 'compiled');
}

const sha256 = (...parts: (string | Uint8Array)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/**
 * Hash of the code that decides what is written, from the running module files themselves: a URL
 * ending in `/` stands for every module in that folder.
 */
async function codeHash(urls: readonly URL[]): Promise<string> {
  const h = createHash('sha256');
  for (const url of urls) {
    const files = url.pathname.endsWith('/')
      ? (await readdir(url)).filter((n) => n.endsWith('.js')).sort().map((n) => new URL(n, url))
      : [url];
    for (const f of files) {
      // The file's name, not its path: the same code checked out elsewhere shares the cache.
      h.update(basename(f.pathname));
      h.update(await readFile(f));
    }
  }
  return h.digest('hex');
}

const STORE_CODE = [
  new URL('../../models/onnx/weight-format.js', import.meta.url),
  new URL('../../models/onnx/weight-store.js', import.meta.url),
  new URL('./weight-prepack.js', import.meta.url),
  // What turns checkpoint bytes into served weights: the readers (dtype decoding) and the plans
  // (fusing, the rotate_half → interleaved row order).
  new URL('../../models/checkpoint/', import.meta.url),
  new URL('../../models/compiler/decoder-served-weights.js', import.meta.url),
  new URL('../../models/compiler/vision-served-weights.js', import.meta.url),
];
const COMPILER_CODE = [new URL('../../models/compiler/', import.meta.url), new URL('../../models/onnx/', import.meta.url), new URL('../../calibrators/', import.meta.url)];

/** What pre-packed layouts depend on: the instruction set onnxruntime dispatches on, and its version. */
async function machineFingerprint(): Promise<string> {
  const flags = await readFile('/proc/cpuinfo', 'utf8').then((t) => /^flags\s*:(.*)$/m.exec(t)?.[1]?.trim() ?? '', () => '');
  return sha256(process.arch, cpus()[0]?.model ?? '', flags, ort.env.versions.common ?? '');
}

/**
 * sha256 of the files' contents, in order. Hashing gigabytes takes seconds, so each file's hash is
 * remembered in the cache folder under its path, size, mtime, ctime and inode; a changed file is re-hashed.
 */
export async function contentHash(cacheDir: string, files: readonly string[]): Promise<string> {
  const memoPath = join(cacheDir, 'file-hashes.json');
  const memo = await readFile(memoPath, 'utf8').then((t) => JSON.parse(t) as Record<string, string>, () => ({} as Record<string, string>));
  const hashes: string[] = [];
  let changed = false;
  for (const f of files) {
    const path = await realpath(f);
    const s = await stat(path);
    // ctime too: unlike mtime, no tool can set it back (cp -p, tar and rsync -t restore mtime).
    const id = `${path}|${s.size}|${s.mtimeMs}|${s.ctimeMs}|${s.ino}`;
    let h = memo[id];
    if (!h) {
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(path, { highWaterMark: 8 << 20 })) hash.update(chunk as Buffer);
      memo[id] = h = hash.digest('hex');
      changed = true;
    }
    hashes.push(h);
  }
  if (changed) {
    await mkdir(cacheDir, { recursive: true });
    const tmp = tempNameFor(memoPath);
    await writeFile(tmp, JSON.stringify(memo));
    await rename(tmp, memoPath);
  }
  return sha256(hashes.join(','));
}

export type StoreTimings = Pick<LoadTimes, 'readMs' | 'prepackMs' | 'hit'>;

export interface OpenedStore {
  dir: string;
  index: WeightStoreIndex;
  weights: WeightProvider;
  timings: StoreTimings;
}

export interface StoreRequest {
  cacheDir: string;
  /** A readable label for the folder name. */
  name: string;
  /** Which served-weights set of the checkpoint this is (`decoder`, `vision`): one checkpoint may feed several. */
  part: string;
  format: WeightFormat;
  /** The checkpoint files the served weights come from (their content keys the store). */
  files: readonly string[];
  /**
   * Everything else the served weights depend on (their content keys the store too): e.g. the
   * config a checkpoint is read with, which decides head order and tying for the same bytes.
   */
  describe: string;
  /** Opened only on a miss. */
  served: () => Promise<{ weights: ServedWeights; close(): Promise<void> }>;
}

/** The store for these weights and format: from the cache, or written (and pre-packed) now. */
export async function openWeightStore(req: StoreRequest): Promise<OpenedStore> {
  const started = performance.now();
  // The key is the files' content: weights with no file (in memory) would all share one entry.
  if (req.files.length === 0) throw new Error(`${req.name}: a weight store is keyed by its checkpoint's files, and this checkpoint has none (in-memory weights go inline)`);
  const key = sha256(
    await contentHash(req.cacheDir, req.files),
    req.describe,
    req.part,
    req.format,
    await codeHash(STORE_CODE),
    await machineFingerprint(),
  ).slice(0, 24);
  const dir = join(req.cacheDir, `${req.name.replace(/[^A-Za-z0-9._-]/g, '_')}-${req.part}-${req.format}-${key}`);
  const cached = await readStoreIndex(dir);
  if (cached) {
    return { dir, index: cached, weights: storeWeights(cached), timings: { readMs: performance.now() - started, prepackMs: 0, hit: true } };
  }

  await mkdir(req.cacheDir, { recursive: true });
  await removeAbandonedBuilds(req.cacheDir, basename(dir));
  const tmp = await mkdtemp(`${dir}.tmp-`);
  try {
    await writeFile(join(tmp, BUILDER_FILE), JSON.stringify(THIS_BUILDER));
    const source = await req.served();
    let index: WeightStoreIndex;
    try {
      index = await writeWeightStore(tmp, source.weights, req.format);
    } finally {
      await source.close();
    }
    const readMs = performance.now() - started;
    const packStarted = performance.now();
    index = await prepackWeightStore(tmp, index);
    await writeStoreIndex(tmp, index);
    const prepackMs = performance.now() - packStarted;
    await rm(join(tmp, BUILDER_FILE));
    await publishDir(tmp, dir);
    // Whoever published first wins; its index is the one to use.
    const published = (await readStoreIndex(dir)) ?? index;
    return { dir, index: published, weights: storeWeights(published), timings: { readMs, prepackMs, hit: false } };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Who is building a temporary store: enough to tell, on this host, whether it still runs. */
interface Builder {
  host: string;
  pid: number;
  /** Tells this process from an earlier one with the same pid (a restarted container's PID 1). */
  started: number;
}
const BUILDER_FILE = 'builder.json';
const THIS_BUILDER: Builder = { host: hostname(), pid: process.pid, started: Math.round(Date.now() - process.uptime() * 1000) };
/** A temporary store nobody has written to for this long is abandoned, whoever started it. */
const ABANDONED_AFTER_MS = 60 * 60 * 1000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary stores of this entry that a killed build left (each the model's size): those
 * whose builder ran on this host and is gone, and any untouched for ABANDONED_AFTER_MS (a builder on
 * another host sharing the cache).
 */
async function removeAbandonedBuilds(cacheDir: string, entry: string): Promise<void> {
  for (const name of await readdir(cacheDir)) {
    if (!name.startsWith(`${entry}.tmp-`)) continue;
    const path = join(cacheDir, name);
    const builder = await readFile(join(path, BUILDER_FILE), 'utf8').then((t) => JSON.parse(t) as Builder, () => null);
    let gone = false;
    if (builder?.host === THIS_BUILDER.host) {
      gone = builder.pid === THIS_BUILDER.pid ? Math.abs(builder.started - THIS_BUILDER.started) > 1000 : !alive(builder.pid);
    }
    if (!gone) {
      const files = await readdir(path).catch(() => [] as string[]);
      const touched = await Promise.all([path, ...files.map((f) => join(path, f))].map((f) => stat(f).then((st) => st.mtimeMs, () => 0)));
      gone = Date.now() - Math.max(...touched) > ABANDONED_AFTER_MS;
    }
    if (gone) await rm(path, { recursive: true, force: true });
  }
}

async function publishDir(tmp: string, dir: string): Promise<void> {
  try {
    await rename(tmp, dir);
  } catch (e) {
    // Another process published the same entry meanwhile: keep theirs.
    if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

export interface CachedGraph<Info> {
  /** The compiled graph's description (JSON-serialisable) and the path of its model file. */
  graph: Info & { path: string };
  compileMs: number;
  hit: boolean;
}

/**
 * A compiled graph over an opened store: `graph-<key>.onnx` (the model, whose weights are the
 * store's external data) and `graph-<key>.json` (its description without the bytes: for a decoder,
 * what the engine needs to feed it). `describe` names the fragment set and everything else the graph
 * depends on besides the compiler's code. Any compiler over the store's WeightProvider fits (the
 * decoder's, a vision tower's).
 */
export async function cachedGraph<Info extends object>(
  store: OpenedStore,
  describe: string,
  compile: (weights: WeightProvider) => Info & { bytes: Uint8Array },
): Promise<CachedGraph<Info>> {
  const started = performance.now();
  const key = sha256(await codeHash(COMPILER_CODE), describe).slice(0, 24);
  // Beside weights.bin: onnxruntime resolves external data relative to the model file's folder and
  // refuses locations outside it.
  const path = join(store.dir, `graph-${key}.onnx`);
  const infoPath = join(store.dir, `graph-${key}.json`);
  const info = await readFile(infoPath, 'utf8').then((t) => JSON.parse(t) as Info, () => null);
  if (info && (await stat(path).then(() => true, () => false))) {
    return { graph: { ...info, path }, compileMs: performance.now() - started, hit: true };
  }
  const { bytes, ...rest } = compile(store.weights);
  await writeAtomically(path, bytes);
  await writeAtomically(infoPath, JSON.stringify(rest));
  return { graph: { ...(rest as Info), path }, compileMs: performance.now() - started, hit: false };
}

/**
 * A temporary name beside `path` no other writer uses: not the pid, which two containers sharing a
 * cache volume (node as PID 1 in each) or two loads in one process have in common.
 */
const tempNameFor = (path: string): string => `${path}.${randomUUID()}.tmp`;

async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempNameFor(path);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    // A failed write (a full disk) leaves nothing behind.
    await rm(tmp, { force: true });
    throw e;
  }
}
