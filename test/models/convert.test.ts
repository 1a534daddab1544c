import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { interleavedToRotateHalf, llama2cToHf, rotateHalfToInterleaved, writeHfCheckpoint } from '../../models/checkpoint/convert.js';
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { loadHfDecoder } from '../../models/checkpoint/hf-decoder.js';
import { parseLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import { stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

const original = parseLlama2cCheckpoint(readFileSync(stories260K.checkpoint));

/** rows·x in float64 for rows [r0, r0+n) of a row-major [*, cols] matrix. */
function project(w: Float32Array, x: Float64Array, r0: number, n: number): Float64Array {
  const cols = x.length;
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[(r0 + r) * cols + j]! * x[j]!;
    out[r] = s;
  }
  return out;
}

/** llama2.c: rotate (2i, 2i+1) by pos·θ^(-2i/hd). */
function ropeInterleaved(v: Float64Array, pos: number, theta: number): Float64Array {
  const hd = v.length;
  const out = new Float64Array(hd);
  for (let i = 0; i < hd; i += 2) {
    const a = pos / theta ** (i / hd);
    out[i] = v[i]! * Math.cos(a) - v[i + 1]! * Math.sin(a);
    out[i + 1] = v[i]! * Math.sin(a) + v[i + 1]! * Math.cos(a);
  }
  return out;
}

/** HF: rotate (i, i + hd/2) by pos·θ^(-2i/hd). */
function ropeRotateHalf(v: Float64Array, pos: number, theta: number): Float64Array {
  const hd = v.length;
  const h = hd / 2;
  const out = new Float64Array(hd);
  for (let i = 0; i < h; i++) {
    const a = pos / theta ** ((2 * i) / hd);
    out[i] = v[i]! * Math.cos(a) - v[i + h]! * Math.sin(a);
    out[i + h] = v[i + h]! * Math.cos(a) + v[i]! * Math.sin(a);
  }
  return out;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

function assertRopeEquivalent(orig: DecoderWeights, hf: DecoderWeights): void {
  const c = orig.config;
  const hd = c.headDim;
  const group = c.nHeads / c.nKvHeads;
  const x = Float64Array.from({ length: c.dim }, (_, i) => Math.sin(i * 0.7) + 0.1 * i);
  const y = Float64Array.from({ length: c.dim }, (_, i) => Math.cos(i * 1.3) - 0.05 * i);
  for (let l = 0; l < c.nLayers; l++) {
    for (let h = 0; h < c.nHeads; h++) {
      const kvh = Math.floor(h / group);
      for (const [pq, pk] of [[0, 0], [7, 3], [300, 511]] as const) {
        const qi = ropeInterleaved(project(orig.layers[l]!.wq, x, h * hd, hd), pq, c.ropeTheta);
        const ki = ropeInterleaved(project(orig.layers[l]!.wk, y, kvh * hd, hd), pk, c.ropeTheta);
        const qh = ropeRotateHalf(project(hf.layers[l]!.wq, x, h * hd, hd), pq, hf.config.ropeTheta);
        const kh = ropeRotateHalf(project(hf.layers[l]!.wk, y, kvh * hd, hd), pk, hf.config.ropeTheta);
        // The rotated vectors are the same numbers in another order…
        for (let i = 0; i < hd; i++) {
          const j = i % 2 === 0 ? i / 2 : (i - 1) / 2 + hd / 2;
          assert.ok(Math.abs(qi[i]! - qh[j]!) < 1e-12, `layer ${l} head ${h} q[${i}]`);
        }
        // …so the attention score, the quantity the model uses, is unchanged.
        const si = dot(qi, ki);
        assert.ok(Math.abs(si - dot(qh, kh)) <= 1e-12 * Math.max(1, Math.abs(si)), `layer ${l} head ${h} score`);
      }
    }
  }
}

describe('llama2.c → HF conversion', () => {
  it('permutes rows within heads and inverts', () => {
    const w = Float32Array.from({ length: 2 * 4 * 3 }, (_, i) => i);
    const p = interleavedToRotateHalf(w, 2, 4);
    // Head 0 rows [0,1,2,3] become [0,2,1,3]; each row has 3 columns.
    assert.deepEqual([...p.subarray(0, 12)], [0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]);
    assert.deepEqual(rotateHalfToInterleaved(p, 2, 4), w);
  });

  it('writes an HF Llama checkpoint whose rotate_half RoPE equals the original interleaved RoPE', async () => {
    await withTempDir(async (dir) => {
      const ckpt = llama2cToHf(original);
      assert.equal(ckpt.config.tie_word_embeddings, true);
      assert.equal('lm_head.weight' in ckpt.tensors, false);
      await writeHfCheckpoint(dir, ckpt);
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
      assert.equal(config.architectures[0], 'LlamaForCausalLM');
      assert.equal(config.num_key_value_heads, 4);
      const hf = await loadHfDecoder(dir);
      assert.equal(hf.config.ropeStyle, 'rotate_half');
      assert.deepEqual({ ...hf.config, ropeStyle: 'interleaved' }, original.config);
      assert.equal(hf.lmHead, hf.tokenEmbedding);
      assert.deepEqual(hf.layers[2]!.wv, original.layers[2]!.wv);
      assertRopeEquivalent(original, hf);
    });
  });

  it('writes BF16 and untied heads', async () => {
    await withTempDir(async (dir) => {
      const untied: DecoderWeights = { ...original, lmHead: original.tokenEmbedding.slice() };
      const ckpt = llama2cToHf(untied, { dtype: 'BF16' });
      assert.equal(ckpt.config.torch_dtype, 'bfloat16');
      assert.equal(ckpt.config.tie_word_embeddings, false);
      await writeHfCheckpoint(dir, ckpt);
      const hf = await loadHfDecoder(dir);
      assert.notEqual(hf.lmHead, hf.tokenEmbedding);
      const maxRel = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!) / Math.max(Math.abs(b[i]!), 1e-30)), 0);
      assert.ok(maxRel(hf.lmHead, original.tokenEmbedding) <= 2 ** -8);
      const c = original.config;
      assert.ok(maxRel(hf.layers[0]!.wq, interleavedToRotateHalf(original.layers[0]!.wq, c.nHeads, c.headDim)) <= 2 ** -8);
    });
  });
});
