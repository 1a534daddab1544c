/**
 * Pre-packs a weight store's linear weights once, on disk, so no session packs them again.
 *
 * onnxruntime re-lays out constant matrix weights for its GEMM kernels when a session is created
 * ("pre-packing": MLAS's packed f32 panels, MatMulNBits' int8-compute layout). Done per session, each
 * session holds its own packed copy in anonymous memory: two graphs of one model would hold the
 * weights twice. onnxruntime (≥ 1.21) can instead write the packed forms into an optimized model's
 * external data and memory-map them on load. This step does that for a whole store, one chunk of
 * linear weights at a time (a throwaway graph of the linear layers alone, optimized and saved by
 * onnxruntime), then copies the packed blobs into the store file and records them in its index. Every
 * graph built over the store then refers to them, and its sessions map them from the page cache.
 *
 * The packed layout depends on the CPU's instruction set and the onnxruntime version, so the store
 * is keyed by both (weight-cache.ts).
 */
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../models/onnx/graph-builder.js';
import { onnx } from '../../models/onnx/onnx-proto.js';
import { readAt } from '../../models/checkpoint/read-at.js';
import { StoreAppender, storeWeights, type WeightStoreIndex } from '../../models/onnx/weight-store.js';
import { storedName } from '../../models/onnx/weights.js';

/** Linear weights per throwaway graph: bounds the memory onnxruntime uses while packing. */
const CHUNK_BYTES = 256 * 1024 * 1024;
/**
 * f32 weights are packed by MLAS's one routine whichever of these ops consumes them (after
 * onnxruntime's fusions a MatMul may become FusedMatMul or Gemm), and the key is `<op>+<hash of the
 * packed bytes>`: filing the blob under every such op lets any graph find it.
 */
const F32_PACK_OPS = ['MatMul', 'FusedMatMul', 'Gemm'];

const TMP_MODEL = 'prepack-in.onnx';
const TMP_OPTIMIZED = 'prepack-out.onnx';
const TMP_DATA = 'prepack-out.data';

/** Packs every linear weight of the store in `dir`; returns the index with the packed blobs recorded. */
export async function prepackWeightStore(dir: string, index: WeightStoreIndex): Promise<WeightStoreIndex> {
  const linears = Object.entries(index.weights).filter(([, w]) => w.kind === 'linear');
  const chunks: string[][] = [];
  let size = Infinity;
  for (const [name, w] of linears) {
    const bytes = w.arrays.reduce((n, a) => n + a.length, 0);
    if (size + bytes > CHUNK_BYTES) {
      chunks.push([]);
      size = 0;
    }
    chunks.at(-1)!.push(name);
    size += bytes;
  }
  const out = await StoreAppender.open(dir, index.bytes);
  try {
    for (const names of chunks) await prepackChunk(dir, index, names, out);
  } finally {
    await out.close();
    await Promise.all([TMP_MODEL, TMP_OPTIMIZED, TMP_DATA].map((f) => rm(join(dir, f), { force: true })));
  }
  return { ...index, bytes: out.bytes };
}

async function prepackChunk(dir: string, index: WeightStoreIndex, names: string[], out: StoreAppender): Promise<void> {
  const g = new GraphBuilder('attune_prepack');
  const provider = storeWeights(index);
  names.forEach((name, i) => {
    const [o, inDim] = index.weights[name]!.dims as [number, number];
    const x = g.input(`x${i}`, 'float32', [1, inDim]);
    g.output(provider.linear(g, x, name), 'float32', [1, o], `y${i}`);
  });
  await writeFile(join(dir, TMP_MODEL), g.toBytes());
  const session = await ort.InferenceSession.create(join(dir, TMP_MODEL), {
    // The same level as serving sessions, so the same kernels pack the same weights.
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    // Errors only: saving an optimized model warns that it is specific to this machine, which is why
    // the store is keyed by it.
    logSeverityLevel: 3,
    optimizedModelFilePath: join(dir, TMP_OPTIMIZED),
    extra: {
      'session.save_external_prepacked_constant_initializers': '1',
      'session.optimized_model_external_initializers_file_name': TMP_DATA,
      'session.optimized_model_external_initializers_min_size_in_bytes': '0',
    },
  });
  await session.release();

  const model = onnx.ModelProto.decode(await readFile(join(dir, TMP_OPTIMIZED)));
  const byStoredName = new Map<string, (typeof index.weights)[string]['arrays'][number]>();
  for (const name of names) for (const a of index.weights[name]!.arrays) byStoredName.set(storedName(name, a.role), a);
  const data = await open(join(dir, TMP_DATA), 'r');
  try {
    for (const t of model.graph?.initializer ?? []) {
      const array = t.name ? byStoredName.get(t.name) : undefined;
      if (!array) continue;
      for (const entry of t.externalData ?? []) {
        if (!entry.key?.startsWith('prepacked') || !entry.value) continue;
        const [key, ...blobs] = entry.value.split('|');
        const placed: { offset: number; length: number }[] = [];
        for (const blob of blobs) {
          const [offset, length] = blob.split(';').map(Number) as [number, number];
          placed.push({ offset: await out.append(await readAt(data, offset, length)), length });
        }
        const [op, hash] = key!.split('+') as [string, string];
        const keys = F32_PACK_OPS.includes(op) ? F32_PACK_OPS.map((o) => `${o}+${hash}`) : [key!];
        for (const k of keys) array.prepacked.push({ key: k, blobs: placed });
      }
    }
  } finally {
    await data.close();
  }
}
