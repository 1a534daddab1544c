/**
 * RoPE's per-pair frequencies with scaling, against values worked out by hand from transformers'
 * definitions (modeling_rope_utils: linear and llama3), for head_dim 8 at θ 10000, where the
 * unscaled frequencies are 1, 0.1, 0.01 and 0.001 and their wavelengths 2π/f are 6.28, 62.8, 628
 * and 6283.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ropeInverseFrequencies } from '../../models/compiler/rope.js';

const config = { headDim: 8, ropeTheta: 10000 };

function close(actual: Float32Array, expected: number[]) {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, p) => assert.ok(Math.abs(actual[p]! - e) <= 1e-7 + 1e-6 * e, `pair ${p}: ${actual[p]} vs ${e}`));
}

describe('RoPE frequencies', () => {
  it('are θ^(−2p/hd) rounded to float32 without scaling (llama2.c)', () => {
    const f = ropeInverseFrequencies(config);
    assert.deepEqual(Array.from(f), [1, 0.1, 0.01, 0.001].map(Math.fround));
  });

  it('linear: every frequency divided by the factor', () => {
    close(ropeInverseFrequencies({ ...config, ropeScaling: { type: 'linear', factor: 4 } }), [0.25, 0.025, 0.0025, 0.00025]);
  });

  it('llama3: short wavelengths kept, long ones divided, the band between blended', () => {
    // Original context 4096, low/high factors 1 and 8: wavelengths under 4096/8 = 512 keep their
    // frequency, those over 4096/1 are divided by 8. Pair 2 (628) lies between: it fits
    // 4096/628.3 = 6.519 times, so smooth = (6.519 − 1)/(8 − 1) = 0.78843 and its frequency is
    // 0.01 · (0.78843 + 0.21157/8) = 0.0081487.
    const scaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 8, originalMaxPositionEmbeddings: 4096 } as const;
    close(ropeInverseFrequencies({ ...config, ropeScaling: scaling }), [1, 0.1, 0.0081487, 0.000125]);
  });
});
