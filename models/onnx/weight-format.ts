/**
 * How a linear layer's weights are stored and computed in each weight format. Only linear layers
 * change: embeddings, norms and biases stay float32, and so does everything between the linear
 * layers (attention, softmax, every calibrator), so calibrators see the same fp32 arithmetic in every
 * format.
 *
 * - `f32`: MatMul over the weight stored transposed, `[in, out]`.
 * - `int8`, `int4`: com.microsoft MatMulNBits, blockwise symmetric quantization along `in` in blocks
 *   of 32 with one float32 scale per block (llama.cpp's q8_0 and q4_0 schemes), computed by ORT's
 *   int8 kernels (accuracy_level 4: activations are quantized per block too). The classifier keeps
 *   8 bits under int4, as llama.cpp keeps its output layer at 6 bits under q4_0: logits are the most
 *   sensitive product.
 * - `f16`: weights rounded to float16 and then served as float32. ORT's x86 CPU EP has no fp16 GEMM,
 *   and a float16 initializer behind a Cast is constant-folded to float32 at load (measured: memory
 *   and speed equal f32), so f16 is offered only to reproduce f16-rounded numerics.
 */
import { attr, type DType, type GraphBuilder, type Value } from './graph-builder.js';

export const WEIGHT_FORMATS = ['f32', 'f16', 'int8', 'int4'] as const;
export type WeightFormat = (typeof WEIGHT_FORMATS)[number];

/** Elements per quantization block (q8_0 and q4_0 use 32). */
export const QUANT_BLOCK = 32;

/** One array as stored: `role` names it within its weight (`weight`, `q`, `scales`). */
export interface EncodedTensor {
  role: string;
  dtype: DType;
  dims: number[];
  bytes: Uint8Array;
}

/** How a linear layer is computed, and the arrays it needs, in order of the op's inputs. */
export type LinearKernel = { op: 'matmul' } | { op: 'nbits'; bits: 4 | 8; blockSize: number };

export interface EncodedLinear {
  kernel: LinearKernel;
  tensors: EncodedTensor[];
}

const bytesOf = (a: Float32Array | Uint8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Bits a linear layer gets in a format; `classifier` marks the LM head. */
export function linearBits(format: WeightFormat, classifier: boolean): 4 | 8 | null {
  if (format === 'int8') return 8;
  if (format === 'int4') return classifier ? 8 : 4;
  return null;
}

/** `w` is `[out, in]` row-major (nn.Linear's layout). */
export function encodeLinear(format: WeightFormat, w: Float32Array, out: number, inDim: number, classifier: boolean): EncodedLinear {
  const bits = linearBits(format, classifier);
  if (bits === null) {
    const values = format === 'f16' ? roundToHalf(w) : w;
    return { kernel: { op: 'matmul' }, tensors: [{ role: 'weight', dtype: 'float32', dims: [inDim, out], bytes: bytesOf(transpose2d(values, out, inDim)) }] };
  }
  const { q, scales, blocks } = quantizeBlockwise(w, out, inDim, bits, QUANT_BLOCK);
  return {
    kernel: { op: 'nbits', bits, blockSize: QUANT_BLOCK },
    tensors: [
      { role: 'q', dtype: 'uint8', dims: [out, blocks, (QUANT_BLOCK * bits) / 8], bytes: q },
      { role: 'scales', dtype: 'float32', dims: [out * blocks], bytes: bytesOf(scales) },
    ],
  };
}

/** `x · Wᵀ` over the last axis of x, given the arrays of encodeLinear in order. */
export function emitLinear(g: GraphBuilder, x: Value, kernel: LinearKernel, out: number, inDim: number, arrays: Value[]): Value {
  if (kernel.op === 'matmul') return g.op('MatMul', [x, arrays[0]!]);
  return g.op('MatMulNBits', [x, arrays[0]!, arrays[1]!], {
    K: attr.int(inDim),
    N: attr.int(out),
    bits: attr.int(kernel.bits),
    block_size: attr.int(kernel.blockSize),
    // int8 activations per block: ORT's fast path on x86 (AVX2/AVX-512 VNNI).
    accuracy_level: attr.int(4),
  }, undefined, 'com.microsoft');
}

/**
 * Symmetric blockwise quantization along each row, MatMulNBits' layout: `q[row][block][bytes]`,
 * two 4-bit values per byte (the even element in the low nibble), stored offset by 2^(bits−1), the
 * zero point MatMulNBits assumes when none is given. A row's last block is zero-padded.
 * 8 bits: scale = max|x| / 127 (q8_0). 4 bits: scale = (the signed value of largest magnitude) / −8,
 * so that value maps exactly onto −8 and the full range [−8, 7] is used (q4_0).
 */
export function quantizeBlockwise(w: Float32Array, rows: number, cols: number, bits: 4 | 8, block: number): { q: Uint8Array; scales: Float32Array; blocks: number } {
  const blocks = Math.ceil(cols / block);
  const blob = (block * bits) / 8;
  const q = new Uint8Array(rows * blocks * blob);
  const scales = new Float32Array(rows * blocks);
  const zero = bits === 8 ? 128 : 8;
  const lo = bits === 8 ? -127 : -8;
  const hi = bits === 8 ? 127 : 7;
  for (let r = 0; r < rows; r++) {
    const rowStart = r * cols;
    for (let b = 0; b < blocks; b++) {
      const start = rowStart + b * block;
      const end = Math.min(start + block, rowStart + cols);
      let extreme = 0;
      for (let i = start; i < end; i++) if (Math.abs(w[i]!) > Math.abs(extreme)) extreme = w[i]!;
      // `|| 0`: an all-zero block gets scale +0, not the -0 that 0 / -8 gives.
      const scale = Math.fround(bits === 8 ? Math.abs(extreme) / 127 : extreme / -8) || 0;
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[r * blocks + b] = scale;
      const at = (r * blocks + b) * blob;
      for (let i = start; i < end; i++) {
        const v = Math.min(hi, Math.max(lo, Math.round(w[i]! * inv))) + zero;
        const k = i - start;
        if (bits === 8) q[at + k] = v;
        else q[at + (k >> 1)]! |= k & 1 ? v << 4 : v;
      }
      // Padding elements quantize to the zero point (value 0).
      for (let k = end - start; k < block; k++) {
        if (bits === 8) q[at + k] = zero;
        else q[at + (k >> 1)]! |= k & 1 ? zero << 4 : zero;
      }
    }
  }
  return { q, scales, blocks };
}

/** What MatMulNBits computes with: the dequantized `[rows, cols]` matrix (tests). */
export function dequantizeBlockwise(q: Uint8Array, scales: Float32Array, rows: number, cols: number, bits: 4 | 8, block: number): Float32Array {
  const blocks = Math.ceil(cols / block);
  const blob = (block * bits) / 8;
  const zero = bits === 8 ? 128 : 8;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = Math.floor(c / block);
      const k = c % block;
      const at = (r * blocks + b) * blob;
      const v = bits === 8 ? q[at + k]! : k & 1 ? q[at + (k >> 1)]! >> 4 : q[at + (k >> 1)]! & 15;
      out[r * cols + c] = (v - zero) * scales[r * blocks + b]!;
    }
  }
  return out;
}

/** `[rows, cols]` row-major → `[cols, rows]` row-major. */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let col = 0; col < cols; col++) out[col * rows + r] = a[base + col]!;
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Each value rounded to the nearest float16 (ties to even, overflow to ±∞), kept as float32. */
export function roundToHalf(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = halfRound(a[i]!);
  return out;
}

function halfRound(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const exp = (bits >>> 23) & 0xff;
  if (exp === 0xff) return x; // NaN, ±∞
  if (exp > 142) return x > 0 ? Infinity : -Infinity; // above 2^15·(2 − 2^-10) rounds past 65504
  if (exp >= 113) {
    // A normal half (2^-14 and up): keep 10 of the 23 mantissa bits, ties to even, in integer
    // arithmetic (a carry into the exponent is the correct rounding up).
    const rounded = (bits + 0xfff + ((bits >>> 13) & 1)) & 0xffffe000;
    if (((rounded >>> 23) & 0xff) > 142) return x > 0 ? Infinity : -Infinity;
    u32[0] = rounded;
    return f32[0]!;
  }
  // Subnormal halves have a fixed step of 2^-24 (rare in weights: done in float arithmetic).
  const step = 2 ** -24;
  return roundHalfEven(x / step) * step;
}

function roundHalfEven(v: number): number {
  const fl = Math.floor(v);
  const diff = v - fl;
  if (diff > 0.5) return fl + 1;
  if (diff < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}
