/**
 * RoPE's per-pair inverse frequencies, θ^(−2p/hd) for pair p, after the checkpoint's frequency
 * scaling. The unscaled values are rounded to float32 as llama2.c computes them, which the golden
 * greedy test depends on; scaling is applied to those values in float64, then rounded again.
 */
import type { DecoderConfig, RopeScaling } from '../checkpoint/decoder-weights.js';

export function ropeInverseFrequencies(c: Pick<DecoderConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const half = c.headDim / 2;
  const out = new Float32Array(half);
  for (let p = 0; p < half; p++) out[p] = scale(Math.fround(Math.pow(c.ropeTheta, (-2 * p) / c.headDim)), c.ropeScaling);
  return out;
}

function scale(invFreq: number, s: RopeScaling | undefined): number {
  if (!s) return invFreq;
  if (s.type === 'linear') return invFreq / s.factor;
  // Llama 3.1: wavelengths shorter than the pre-training context / highFreqFactor keep their
  // frequency, those longer than context / lowFreqFactor are slowed by `factor`, and the band
  // between blends the two by how many wavelengths fit in the original context.
  const wavelength = (2 * Math.PI) / invFreq;
  const context = s.originalMaxPositionEmbeddings;
  if (wavelength < context / s.highFreqFactor) return invFreq;
  if (wavelength > context / s.lowFreqFactor) return invFreq / s.factor;
  const smooth = (context / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
  return (1 - smooth) * (invFreq / s.factor) + smooth * invFreq;
}
