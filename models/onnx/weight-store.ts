/**
 * The on-disk weight store: a model part's served weights encoded in one weight format, in one file
 * (`weights.bin`) that every compiled graph of the model points at as ONNX external data. Each array
 * starts on a page boundary, so onnxruntime memory-maps it instead of copying it: however many graphs
 * (and sessions) a model has, the bytes are in memory once, in the page cache. onnxruntime's
 * pre-packed forms of the linear weights are appended to the same file by the engine's prepack step
 * (src/engine/weight-prepack.ts) and recorded here, so sessions map those too.
 *
 * Generic over any served-weights set: the decoder's and a vision tower's stores differ only in
 * their names.
 */
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DType, GraphBuilder, PrepackedRef, Value } from './graph-builder.js';
import { emitLinear, encodeLinear, type EncodedTensor, type LinearKernel, type WeightFormat } from './weight-format.js';
import { storedName, type ServedWeights, type WeightProvider, type WeightSpec } from './weights.js';

export const STORE_FILE = 'weights.bin';
const INDEX_FILE = 'weights.json';
/** mmap works on page boundaries: an array at an unaligned offset would be read into the heap. */
export const STORE_ALIGN = 4096;
const INDEX_VERSION = 1;

export interface StoredArray {
  role: string;
  dtype: DType;
  dims: number[];
  offset: number;
  length: number;
  prepacked: PrepackedRef[];
}

export interface StoredWeight {
  kind: WeightSpec['kind'];
  /** As served: linear `[out, in]`. */
  dims: number[];
  /** Linear layers: how they are computed in this format. */
  kernel?: LinearKernel;
  /** In the order the kernel takes them. */
  arrays: StoredArray[];
}

export interface WeightStoreIndex {
  version: number;
  format: WeightFormat;
  /** Bytes of weights.bin. */
  bytes: number;
  /** Bytes of the encoded weights alone (what the graphs read), before any pre-packed forms. */
  weightBytes: number;
  weights: Record<string, StoredWeight>;
}

const alignUp = (n: number): number => Math.ceil(n / STORE_ALIGN) * STORE_ALIGN;

/** Appends byte arrays to a store file at page-aligned offsets. */
export class StoreAppender {
  private constructor(
    private readonly fh: Awaited<ReturnType<typeof open>>,
    private end: number,
  ) {}

  static async open(dir: string, end = 0): Promise<StoreAppender> {
    return new StoreAppender(await open(join(dir, STORE_FILE), end === 0 ? 'w' : 'r+'), end);
  }

  get bytes(): number {
    return this.end;
  }

  async append(bytes: Uint8Array): Promise<number> {
    const at = alignUp(this.end);
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.fh.write(bytes, done, Math.min(bytes.byteLength - done, 1 << 30), at + done);
      done += bytesWritten;
    }
    this.end = at + bytes.byteLength;
    return at;
  }

  async close(): Promise<void> {
    // Pad the file to a page boundary so the last array maps whole.
    const padded = alignUp(this.end);
    if (padded > this.end) await this.fh.truncate(padded);
    this.end = padded;
    await this.fh.close();
  }
}

/**
 * Encodes and writes every served weight, one at a time (reading, encoding and writing one tensor
 * before the next is read), and returns the index. `dir` must exist; writeStoreIndex publishes it.
 */
export async function writeWeightStore(dir: string, served: ServedWeights, format: WeightFormat): Promise<WeightStoreIndex> {
  const out = await StoreAppender.open(dir);
  const weights: Record<string, StoredWeight> = {};
  try {
    for (const [name, w] of served) {
      const data = await w.read();
      checkFinite(name, data);
      let kernel: LinearKernel | undefined;
      let encoded: EncodedTensor[];
      if (w.kind === 'linear') {
        const [o, i] = w.dims as [number, number];
        const enc = encodeLinear(format, data, o, i, w.classifier === true);
        kernel = enc.kernel;
        encoded = enc.tensors;
      } else {
        encoded = [{ role: 'weight', dtype: 'float32', dims: w.dims, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }];
      }
      const arrays: StoredArray[] = [];
      for (const e of encoded) {
        const offset = await out.append(e.bytes);
        arrays.push({ role: e.role, dtype: e.dtype, dims: e.dims, offset, length: e.bytes.byteLength, prepacked: [] });
      }
      weights[name] = { kind: w.kind, dims: w.dims, kernel, arrays };
    }
  } finally {
    await out.close();
  }
  return { version: INDEX_VERSION, format, bytes: out.bytes, weightBytes: out.bytes, weights };
}

/**
 * A NaN or ±∞ in a checkpoint is corruption: refused here with its name, since blockwise quantization
 * would silently turn a NaN into a finite value (and f32 would spread it through every logit).
 */
function checkFinite(name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new Error(`served weight ${name} holds ${data[i]} at element ${i}: the checkpoint is corrupt`);
  }
}

export async function writeStoreIndex(dir: string, index: WeightStoreIndex): Promise<void> {
  const tmp = join(dir, `${INDEX_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(index));
  await rename(tmp, join(dir, INDEX_FILE));
}

/** The index of a complete store, or null when there is none (or it is from another version). */
export async function readStoreIndex(dir: string): Promise<WeightStoreIndex | null> {
  try {
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as WeightStoreIndex;
    return index.version === INDEX_VERSION ? index : null;
  } catch {
    return null;
  }
}

/**
 * A WeightProvider over a store: every weight is an external initializer in STORE_FILE, which the
 * graph's model file must sit beside.
 */
export function storeWeights(index: WeightStoreIndex): WeightProvider {
  const perGraph = new WeakMap<GraphBuilder, Map<string, Value[]>>();
  const lookup = (name: string): StoredWeight => {
    const w = index.weights[name];
    if (!w) throw new Error(`no weight named ${name} in the store`);
    return w;
  };
  const emitted = (g: GraphBuilder, name: string, w: StoredWeight): Value[] => {
    let cache = perGraph.get(g);
    if (!cache) perGraph.set(g, (cache = new Map()));
    let v = cache.get(name);
    if (!v) {
      v = w.arrays.map((a) => g.externalInitializer(storedName(name, a.role), a.dtype, a.dims, {
        location: STORE_FILE, offset: a.offset, length: a.length, prepacked: a.prepacked,
      }));
      cache.set(name, v);
    }
    return v;
  };
  return {
    has: (name) => Object.hasOwn(index.weights, name),
    tensor(g, name) {
      const w = lookup(name);
      if (w.kind !== 'tensor') throw new Error(`${name} is a linear weight; use linear()`);
      return emitted(g, name, w)[0]!;
    },
    linear(g, x, name) {
      const w = lookup(name);
      if (w.kind !== 'linear' || !w.kernel) throw new Error(`${name} is not a linear weight`);
      const [out, inDim] = w.dims as [number, number];
      return emitLinear(g, x, w.kernel, out, inDim, emitted(g, name, w));
    },
  };
}
