/**
 * safetensors writer for float tensors held as Float32Array: fixtures in tests and the output of
 * checkpoint converters. Narrowing to F16/BF16 rounds to nearest even, as torch does.
 */
import { open, rename, rm } from 'node:fs/promises';

export type WritableDtype = 'F32' | 'F16' | 'BF16';

export interface WritableTensor {
  dtype: WritableDtype;
  shape: number[];
  data: Float32Array;
}

const ELEMENT_BYTES: Record<WritableDtype, number> = { F32: 4, F16: 2, BF16: 2 };

interface Layout {
  header: Uint8Array;
  order: [string, WritableTensor][];
}

function layout(tensors: Record<string, WritableTensor>, metadata: Record<string, string> | undefined): Layout {
  // Wider elements first keeps every tensor aligned to its element size for zero-copy readers.
  const order = Object.entries(tensors).sort(([, a], [, b]) => ELEMENT_BYTES[b.dtype] - ELEMENT_BYTES[a.dtype]);
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of order) {
    if (!(t.dtype in ELEMENT_BYTES)) throw new Error(`${name}: cannot write dtype ${String(t.dtype)}`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || count !== t.data.length) {
      throw new Error(`${name}: shape [${t.shape.join(', ')}] does not hold ${t.data.length} values`);
    }
    const bytes = count * ELEMENT_BYTES[t.dtype];
    json[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let text = JSON.stringify(json);
  // HF pads the header with spaces so the data section starts 8-byte aligned.
  text += ' '.repeat((8 - ((8 + Buffer.byteLength(text)) % 8)) % 8);
  const body = new TextEncoder().encode(text);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, order };
}

function encodeTensor(t: WritableTensor): Uint8Array {
  const n = t.data.length;
  if (t.dtype === 'F32') {
    const out = new Uint8Array(n * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < n; i++) view.setFloat32(i * 4, t.data[i]!, true);
    return out;
  }
  const out = new Uint8Array(n * 2);
  const view = new DataView(out.buffer);
  const convert = t.dtype === 'BF16' ? floatToBf16Bits : floatToHalfBits;
  for (let i = 0; i < n; i++) view.setUint16(i * 2, convert(t.data[i]!), true);
  return out;
}

/** The whole file as one buffer: for small fixtures. */
export function encodeSafetensors(tensors: Record<string, WritableTensor>, metadata?: Record<string, string>): Uint8Array {
  const { header, order } = layout(tensors, metadata);
  const parts = order.map(([, t]) => encodeTensor(t));
  const out = new Uint8Array(header.length + parts.reduce((a, p) => a + p.length, 0));
  out.set(header, 0);
  let o = header.length;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Writes tensor by tensor (never the whole file in memory) to a temporary name, then renames, so a
 * crash never leaves a truncated file where a loader would find it.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, WritableTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, order } = layout(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(header);
    for (const [, t] of order) await fh.write(encodeTensor(t));
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function floatToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) & 0x8000) | 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function floatToHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  // A rounding carry out of the mantissa correctly bumps the exponent, up to infinity.
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}
