/**
 * safetensors reader: `u64 LE N` | N bytes of JSON header | data. Tensors are read on demand with
 * positioned reads, so a checkpoint larger than one Buffer (or than memory twice over) still loads,
 * and are returned as Float32Array whatever their stored float width.
 * A sharded checkpoint (`model.safetensors.index.json`) reads as one store.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { readAt } from './read-at.js';

/** Bytes per element; null for sub-byte formats, whose sizes we do not validate. */
const DTYPE_BYTES: Readonly<Record<string, number | null>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8, C64: 8,
  F4: null, F6_E2M3: null, F6_E3M2: null,
};
export type FloatDtype = 'F32' | 'F16' | 'BF16' | 'F64';
const FLOAT_DTYPES: ReadonlySet<string> = new Set<FloatDtype>(['F32', 'F16', 'BF16', 'F64']);

/** The reference implementation's limit: a larger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

export interface TensorInfo {
  name: string;
  /** The dtype string from the header, e.g. "BF16". */
  dtype: string;
  shape: number[];
  /** Absolute byte position of the tensor's data in its file. */
  fileOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

/** Named tensors readable as float32, from one file or several shards. */
export interface TensorStore {
  readonly metadata: Readonly<Record<string, string>>;
  /** The files read (none for an in-memory image). */
  readonly files: readonly string[];
  names(): string[];
  has(name: string): boolean;
  /** Throws naming the tensor and the source when it is absent. */
  info(name: string): TensorInfo;
  readFloat32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

/**
 * Validates a header against the size of its file. `source` names the file in error messages.
 * `headerBytes` excludes the 8-byte length prefix.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const fail = (what: string): never => {
    throw new Error(`${source}: invalid safetensors header: ${what}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail(`not UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('not a JSON object');
  const dataStart = 8 + headerBytes.byteLength;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof t !== 'object' || t === null) fail(`${name}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = t!;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) fail(`${name}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isCount)) fail(`${name}: shape must be an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`${name}: data_offsets must be [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`${name}: data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataLength) fail(`${name}: data_offsets [${begin}, ${end}] run past the ${dataLength}-byte data section`);
    const elementBytes = DTYPE_BYTES[dtype as string];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (elementBytes != null && count * elementBytes !== end - begin) {
      fail(`${name}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${count * elementBytes} bytes, offsets give ${end - begin}`);
    }
    tensors.set(name, { name, dtype: dtype as string, shape: shape as number[], fileOffset: dataStart + begin, byteLength: end - begin });
  }
  const sorted = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    if (sorted[i]!.fileOffset < p.fileOffset + p.byteLength) fail(`${sorted[i]!.name} overlaps ${p.name}`);
  }
  return { metadata, tensors };
}

/** Converts one tensor's stored bytes to float32 (F64 is narrowed). */
export function decodeFloat32(info: TensorInfo, bytes: Uint8Array): Float32Array {
  if (!FLOAT_DTYPES.has(info.dtype)) {
    throw new Error(`${info.name}: dtype ${info.dtype} is not supported as a weight (F32, F16, BF16 and F64 are)`);
  }
  const n = info.shape.reduce((a, b) => a * b, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (info.dtype as FloatDtype) {
    case 'F32':
      if (LITTLE_ENDIAN_HOST) new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
      else for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      break;
    }
    case 'F16': {
      const table = halfTable();
      for (let i = 0; i < n; i++) out[i] = table[view.getUint16(i * 2, true)]!;
      break;
    }
  }
  return out;
}

let halfToFloat: Float32Array | undefined;
/** All 65,536 half values, built once: a lookup beats bit-twiddling per element. */
function halfTable(): Float32Array {
  if (halfToFloat) return halfToFloat;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  halfToFloat = t;
  return t;
}

function isCount(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** An in-memory safetensors image (tests, small fixtures). */
export function safetensorsFromBytes(bytes: Uint8Array, source = '<memory>'): TensorStore {
  const header = parseSafetensorsHeader(headerSlice(bytes, source), bytes.byteLength, source);
  return storeOver(header, source, [], async (info) => bytes.subarray(info.fileOffset, info.fileOffset + info.byteLength), async () => {});
}

function headerSlice(bytes: Uint8Array, source: string): Uint8Array {
  if (bytes.byteLength < 8) throw new Error(`${source}: not a safetensors file (shorter than 8 bytes)`);
  const n = checkHeaderLength(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true), bytes.byteLength, source);
  return bytes.subarray(8, 8 + n);
}

function checkHeaderLength(n: bigint, fileSize: number, source: string): number {
  if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`${source}: safetensors header claims ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  if (Number(n) + 8 > fileSize) throw new Error(`${source}: safetensors header claims ${n} bytes but the file has ${fileSize}`);
  return Number(n);
}

async function openSingle(path: string): Promise<TensorStore> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const prefix = await readAt(fh, 0, Math.min(8, size));
    if (prefix.byteLength < 8) throw new Error(`${path}: not a safetensors file (shorter than 8 bytes)`);
    const n = checkHeaderLength(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true), size, path);
    const header = parseSafetensorsHeader(await readAt(fh, 8, n), size, path);
    return storeOver(header, path, [path], (info) => readAt(fh, info.fileOffset, info.byteLength), () => fh.close());
  } catch (e) {
    await fh.close();
    throw e;
  }
}

function storeOver(
  header: SafetensorsHeader,
  source: string,
  files: readonly string[],
  read: (info: TensorInfo) => Promise<Uint8Array>,
  close: () => Promise<void>,
): TensorStore {
  const info = (name: string): TensorInfo => {
    const t = header.tensors.get(name);
    if (!t) throw new Error(`${source}: no tensor named ${name}`);
    return t;
  };
  return {
    metadata: header.metadata,
    files,
    names: () => [...header.tensors.keys()],
    has: (name) => header.tensors.has(name),
    info,
    readFloat32: async (name) => {
      const t = info(name);
      try {
        return decodeFloat32(t, await read(t));
      } catch (e) {
        throw new Error(`${source}: ${(e as Error).message}`, { cause: e });
      }
    },
    close,
  };
}

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/**
 * Opens a `.safetensors` file, a `model.safetensors.index.json`, or a directory holding either
 * (the index wins, as in transformers). Close the store when done: it holds file handles.
 */
export async function openSafetensors(path: string): Promise<TensorStore> {
  if ((await stat(path)).isDirectory()) {
    const index = join(path, SAFETENSORS_INDEX);
    if (await exists(index)) return openSharded(index);
    const single = join(path, 'model.safetensors');
    if (await exists(single)) return openSingle(single);
    throw new Error(`${path}: no model.safetensors or ${SAFETENSORS_INDEX}`);
  }
  return basename(path).endsWith('.index.json') ? openSharded(path) : openSingle(path);
}

async function openSharded(indexPath: string): Promise<TensorStore> {
  let weightMap: Record<string, string>;
  try {
    const json = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map?: unknown };
    const wm = json.weight_map;
    if (typeof wm !== 'object' || wm === null || !Object.values(wm).every((v) => typeof v === 'string')) {
      throw new Error('weight_map must map tensor names to file names');
    }
    weightMap = wm as Record<string, string>;
  } catch (e) {
    throw new Error(`${indexPath}: invalid safetensors index: ${(e as Error).message}`, { cause: e });
  }
  const shards = new Map<string, TensorStore>();
  const closeAll = () => Promise.all([...shards.values()].map((s) => s.close())).then(() => {});
  try {
    for (const file of new Set(Object.values(weightMap))) {
      if (file.includes('/') || file.includes('\\') || file === '..') throw new Error(`${indexPath}: shard name ${file} is not a plain file name`);
      shards.set(file, await openSingle(join(dirname(indexPath), file)));
    }
    for (const [name, file] of Object.entries(weightMap)) {
      if (!shards.get(file)!.has(name)) throw new Error(`${indexPath}: ${name} is mapped to ${file}, which does not contain it`);
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  const shardOf = (name: string): TensorStore => {
    const file = weightMap[name];
    if (file === undefined) throw new Error(`${indexPath}: no tensor named ${name}`);
    return shards.get(file)!;
  };
  return {
    metadata: {},
    files: [indexPath, ...[...shards.values()].flatMap((s) => s.files)],
    names: () => Object.keys(weightMap),
    has: (name) => Object.hasOwn(weightMap, name),
    info: (name) => shardOf(name).info(name),
    readFloat32: (name) => shardOf(name).readFloat32(name),
    close: closeAll,
  };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
