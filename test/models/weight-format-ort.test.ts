/**
 * Compact formats through onnxruntime itself: MatMulNBits reads the blockwise layout
 * quantizeBlockwise writes, for K not a multiple of the block, odd K, and edge values.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../models/onnx/graph-builder.js';
import { dequantizeBlockwise, QUANT_BLOCK, quantizeBlockwise } from '../../models/onnx/weight-format.js';
import { inlineWeights, servedFromMemory } from '../../models/onnx/weights.js';
import { writeWeightStore } from '../../models/onnx/weight-store.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { Prng } from '../helpers/prng.js';

async function runLinear(w: Float32Array, out: number, inDim: number, x: Float32Array, format: 'int8' | 'int4'): Promise<Float32Array> {
  const g = new GraphBuilder('nbits');
  const provider = inlineWeights(new Map([['w', { kind: 'linear' as const, dims: [out, inDim], data: w }]]), format);
  g.output(provider.linear(g, g.input('x', 'float32', [1, inDim]), 'w'), 'float32', [1, out], 'y');
  const session = await ort.InferenceSession.create(g.toBytes(), { graphOptimizationLevel: 'all' });
  try {
    const r = await session.run({ x: new ort.Tensor('float32', x, [1, inDim]) });
    return r.y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function reference(w: Float32Array, out: number, inDim: number, x: Float32Array, bits: 4 | 8): Float32Array {
  const { q, scales } = quantizeBlockwise(w, out, inDim, bits, QUANT_BLOCK);
  const dq = dequantizeBlockwise(q, scales, out, inDim, bits, QUANT_BLOCK);
  return Float32Array.from({ length: out }, (_, o) => {
    let s = 0;
    for (let i = 0; i < inDim; i++) s += dq[o * inDim + i]! * x[i]!;
    return s;
  });
}

describe('MatMulNBits over quantizeBlockwise', () => {
  for (const [format, bits] of [['int8', 8], ['int4', 4]] as const) {
    for (const inDim of [32, 40, 7, 172, 33]) {
      it(`${format}, K = ${inDim}: onnxruntime computes x · dequant(W)ᵀ`, async () => {
        const r = new Prng(inDim * bits);
        const out = 24;
        const w = Float32Array.from({ length: out * inDim }, () => r.float() * 2 - 1);
        w.fill(0, 0, Math.min(inDim, 32)); // an all-zero block
        const x = Float32Array.from({ length: inDim }, () => r.float() * 2 - 1);
        const got = await runLinear(w, out, inDim, x, format);
        const want = reference(w, out, inDim, x, bits);
        // accuracy level 4 quantizes x to int8 per block: about 1% of |x|·|w| summed.
        for (let o = 0; o < out; o++) assert.ok(Math.abs(got[o]! - want[o]!) < 0.02 * Math.sqrt(inDim) + 1e-6, `row ${o}: ${got[o]} vs ${want[o]}`);
      });
    }
  }

  it('a NaN weight is refused when the store is written, not quantized into a finite value', () =>
    withTempDir(async (dir) => {
      const w = new Float32Array(24 * 32).fill(0.5);
      w[3] = NaN;
      // Quantized, the NaN would come back as a finite value, -128 steps (outside q8_0's ±127):
      const { q, scales } = quantizeBlockwise(w, 24, 32, 8, 32);
      assert.ok(Number.isFinite(dequantizeBlockwise(q, scales, 24, 32, 8, 32)[3]!));
      const served = servedFromMemory(new Map([['layers.0.o_proj', { kind: 'linear' as const, dims: [24, 32], data: w }]]));
      await assert.rejects(writeWeightStore(dir, served, 'int8'), /layers\.0\.o_proj.*NaN/);
    }));
});
