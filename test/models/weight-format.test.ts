/** Compact weight encodings: blockwise quantization in MatMulNBits' layout, and f16 rounding. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dequantizeBlockwise, quantizeBlockwise, roundToHalf } from '../../models/onnx/weight-format.js';
import { Prng } from '../helpers/prng.js';

const random = (n: number, seed: number, scale = 1) => {
  const r = new Prng(seed);
  return Float32Array.from({ length: n }, () => (r.float() * 2 - 1) * scale);
};

describe('blockwise quantization (q8_0 / q4_0 schemes)', () => {
  for (const bits of [8, 4] as const) {
    // q4_0 maps the block's extreme onto -8, so a value of the opposite sign and the same size needs
    // +8 and is clamped to +7: one step off. Every other value is within half a step.
    const tolerance = bits === 8 ? 0.5 : 1;
    it(`${bits} bits: each value is within ${tolerance} step of its block's scale, and all-zero blocks stay zero`, () => {
      const rows = 5, cols = 70; // 70 = two full blocks of 32 and a padded one
      const w = random(rows * cols, bits);
      w.fill(0, 32, 64); // row 0, block 1: all zeros
      const { q, scales, blocks } = quantizeBlockwise(w, rows, cols, bits, 32);
      assert.equal(blocks, 3);
      assert.equal(q.length, rows * blocks * (32 * bits) / 8);
      const back = dequantizeBlockwise(q, scales, rows, cols, bits, 32);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const scale = Math.abs(scales[r * blocks + Math.floor(c / 32)]!);
          const err = Math.abs(back[r * cols + c]! - w[r * cols + c]!);
          assert.ok(err <= scale * tolerance + 1e-7, `row ${r} col ${c}: error ${err} > ${tolerance} step of ${scale}`);
        }
      }
      assert.equal(scales[1], 0);
      for (let c = 32; c < 64; c++) assert.equal(back[c], 0);
    });
  }

  it('4 bits: the value of largest magnitude maps exactly onto -8, so the full range is used', () => {
    const w = new Float32Array(32).map((_, i) => (i - 10) / 10); // largest magnitude: +2.1 at i = 31
    const { q, scales } = quantizeBlockwise(w, 1, 32, 4, 32);
    assert.ok(Math.abs(scales[0]! - 2.1 / -8) < 1e-7);
    assert.equal(q[15]! >> 4, 0, 'element 31 (high nibble of byte 15) stores -8 + 8 = 0');
    assert.ok(Math.abs(dequantizeBlockwise(q, scales, 1, 32, 4, 32)[31]! - 2.1) < 1e-6);
  });

  it('8 bits: symmetric, max |x| maps onto ±127', () => {
    const w = Float32Array.from([-3, 1.5, 0, 0.75]);
    const { q, scales } = quantizeBlockwise(w, 1, 4, 8, 32);
    assert.ok(Math.abs(scales[0]! - 3 / 127) < 1e-8);
    assert.deepEqual([...q.subarray(0, 4)], [128 - 127, 128 + 64, 128, 128 + 32]);
    assert.equal(q[4], 128, 'padding quantizes to the zero point');
  });
});

describe('f16 rounding', () => {
  it('rounds to the nearest half, ties to even, with subnormals and overflow', () => {
    const cases: [number, number][] = [
      [1, 1],
      [1 + 2 ** -11, 1], // a tie between 1 and 1 + 2^-10: even mantissa wins
      [1 + 3 * 2 ** -11, 1 + 2 ** -9], // a tie between odd 1 + 2^-10 and even 1 + 2^-9
      [1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10], // just past the tie
      [65504, 65504], // the largest half
      [65519, 65504],
      [65520, Infinity],
      [-1e6, -Infinity],
      [2 ** -24, 2 ** -24], // the smallest subnormal half
      [2 ** -26, 0],
      [3 * 2 ** -25, 2 ** -23], // a subnormal tie: 1.5 steps rounds to the even 2 steps
      [0.1, 0.0999755859375],
    ];
    const out = roundToHalf(Float32Array.from(cases.map(([x]) => x)));
    cases.forEach(([x, want], i) => assert.equal(out[i], Math.fround(want), `roundToHalf(${x})`));
  });
});
