import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import { parseLlama2cCheckpoint } from '../../models/checkpoint/llama2c.js';
import { loadLlama2cTokenizer } from '../../models/tokenizers/llama2c-tokenizer.js';
import { aidreams260K, repoRoot, stories260K, STORIES_GOLDEN_PREFIX } from '../helpers/models-dir.js';
import { allHookNames, argmax, type HookContext, ReferenceDecoder } from './reference-forward.js';

const BOS = 1;
const fixtures = join(repoRoot, 'test', 'fixtures');

// A plain Uint8Array, not the Buffer itself: Buffer#slice returns a view, so the parser's
// `bytes.slice(28).buffer` would see the header too and every tensor would be shifted by 7 floats.
const load = (path: string): DecoderWeights => parseLlama2cCheckpoint(new Uint8Array(readFileSync(path)));

/** run.c's generate loop from BOS: `steps` forwards, each choosing the next token, stopping at BOS. */
function greedy(dec: ReferenceDecoder, steps: number): number[] {
  const out: number[] = [];
  let token = BOS;
  for (let pos = 0; pos < steps; pos++) {
    const next = argmax(dec.step({ tokens: [token] })[0]!);
    if (next === BOS) break;
    out.push(next);
    token = next;
  }
  return out;
}

function maxAbsDiff(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, i) => {
    const other = b[i]!;
    assert.equal(row.length, other.length);
    for (let j = 0; j < row.length; j++) m = Math.max(m, Math.abs(row[j]! - other[j]!));
  });
  return m;
}

/** Within each head, interleaved row 2i moves to i and row 2i+1 to i + hd/2 (what HF export does). */
function toRotateHalf(w: Float32Array, heads: number, hd: number, dim: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      const src0 = (h * hd + 2 * i) * dim;
      const src1 = (h * hd + 2 * i + 1) * dim;
      out.set(w.subarray(src0, src0 + dim), (h * hd + i) * dim);
      out.set(w.subarray(src1, src1 + dim), (h * hd + i + hd / 2) * dim);
    }
  }
  return out;
}

describe('ReferenceDecoder on stories260K', () => {
  const weights = load(stories260K.checkpoint);
  const golden: number[] = JSON.parse(readFileSync(join(fixtures, 'stories260K-greedy-256.json'), 'utf8'));
  /** A real continuation, so attention sees a natural sequence rather than repeated tokens. */
  const prompt30 = [BOS, ...golden.slice(0, 29)];

  it('greedy decoding from BOS reproduces llama2.c run.c (ids, printed text, documented prefix)', async () => {
    const dec = new ReferenceDecoder(weights);
    const ids = greedy(dec, 256);
    assert.deepEqual(ids, golden);
    assert.equal(dec.length, 256);

    const tokenizer = await loadLlama2cTokenizer(stories260K.tokenizer, weights.config.vocabSize);
    // Decoding after BOS strips the first piece's dummy-prefix space, as run.c does.
    const text = tokenizer.decode([BOS, ...ids], { skipSpecial: true });
    // run.c prints one newline after its loop.
    assert.equal(text + '\n', readFileSync(join(fixtures, 'stories260K-greedy-256.txt'), 'utf8'));
    assert.ok(text.startsWith(STORIES_GOLDEN_PREFIX));
  });

  it('chunked prefill plus single steps equals one-shot prefill', () => {
    const oneShot = new ReferenceDecoder(weights).step({ tokens: prompt30 });
    const chunked = new ReferenceDecoder(weights);
    const logits = chunked.step({ tokens: prompt30.slice(0, 20) });
    for (let i = 20; i < 30; i++) logits.push(...chunked.step({ tokens: [prompt30[i]!] }));
    assert.equal(chunked.length, 30);
    assert.ok(maxAbsDiff(logits, oneShot) <= 1e-12);

    chunked.reset();
    assert.equal(chunked.length, 0);
    assert.ok(maxAbsDiff(chunked.step({ tokens: prompt30 }), oneShot) <= 1e-12);
  });

  it('embedding rows as input equal token ids', () => {
    const { dim } = weights.config;
    const embeds = prompt30.map((id) => weights.tokenEmbedding.subarray(id * dim, (id + 1) * dim));
    const a = new ReferenceDecoder(weights).step({ tokens: prompt30 });
    const b = new ReferenceDecoder(weights).step({ embeds });
    assert.equal(maxAbsDiff(a, b), 0);
  });

  it('no-op hooks at every hook point leave logits unchanged, and see the documented shapes', () => {
    const plain = new ReferenceDecoder(weights);
    const expected = [...plain.step({ tokens: prompt30.slice(0, 20) }), ...plain.step({ tokens: prompt30.slice(20, 24) })];

    const c = weights.config;
    const dec = new ReferenceDecoder(weights);
    const calls = new Map<string, number>();
    for (const name of allHookNames(c.nLayers)) {
      dec.addHook(name, (_t, ctx) => {
        calls.set(ctx.name, (calls.get(ctx.name) ?? 0) + 1);
      });
    }
    const seen: HookContext[] = [];
    dec.addHook('*', (tensor, ctx) => {
      seen.push(ctx);
      const t = ctx.queryPositions.length;
      assert.equal(tensor.length, t);
      const width = ctx.point === 'hook_resid_pre' ? c.dim : ctx.point === 'attn.hook_z' ? c.headDim : ctx.keyCount;
      for (const row of tensor) assert.equal(row.length, width);
      if (ctx.point === 'hook_resid_pre') {
        assert.equal(ctx.head, undefined);
      } else {
        assert.equal(ctx.kvHead, Math.floor(ctx.head! / (c.nHeads / c.nKvHeads)));
      }
      if (ctx.point === 'attn.hook_attn_scores' || ctx.point === 'attn.hook_pattern') {
        tensor.forEach((row, i) => {
          const pos = ctx.queryPositions[i]!;
          for (let s = pos + 1; s < ctx.keyCount; s++) {
            assert.equal(row[s], ctx.point === 'attn.hook_pattern' ? 0 : -Infinity);
          }
          if (ctx.point === 'attn.hook_pattern') {
            const sum = row.reduce((a, b) => a + b, 0);
            assert.ok(Math.abs(sum - 1) < 1e-12);
          }
        });
      }
      // A replacement with equal values must be as good as no hook at all.
      return tensor.map((row) => row.slice());
    });
    const got = [...dec.step({ tokens: prompt30.slice(0, 20) }), ...dec.step({ tokens: prompt30.slice(20, 24) })];
    assert.equal(maxAbsDiff(got, expected), 0);

    // Two steps, each: per layer one resid_pre and nHeads calls for each attention hook.
    assert.equal(calls.size, c.nLayers * 4);
    for (const [name, n] of calls) assert.equal(n, name.endsWith('hook_resid_pre') ? 2 : 2 * c.nHeads);
    const last = seen.at(-1)!;
    assert.deepEqual(last.queryPositions, [20, 21, 22, 23]);
    assert.equal(last.keyCount, 24);
  });

  it('hooks take effect, can keep state across steps, and can be removed', () => {
    const base = new ReferenceDecoder(weights).step({ tokens: prompt30.slice(0, 8) });

    // An ACT-like column rescale on one head, with running column sums kept in the closure.
    const dec = new ReferenceDecoder(weights);
    const columnMass: number[] = [];
    const remove = dec.addHook('blocks.2.attn.hook_pattern', (p, ctx) => {
      if (ctx.head !== 3) return;
      for (const row of p) {
        for (let s = 0; s < ctx.keyCount; s++) columnMass[s] = (columnMass[s] ?? 0) + row[s]!;
        row[0] = row[0]! * 0.5;
        const sum = row.reduce((a, b) => a + b, 0);
        for (let s = 0; s < row.length; s++) row[s] = row[s]! / sum;
      }
    });
    const changed = dec.step({ tokens: prompt30.slice(0, 6) });
    assert.ok(maxAbsDiff(changed, base.slice(0, 6)) > 1e-6);
    dec.step({ tokens: prompt30.slice(6, 8) });
    assert.equal(columnMass.length, 8);
    // Rows: 6 then 2, each summing to 1 before the rescale.
    assert.ok(Math.abs(columnMass.reduce((a, b) => a + b, 0) - 8) < 1e-12);

    remove();
    dec.reset();
    assert.equal(maxAbsDiff(dec.step({ tokens: prompt30.slice(0, 8) }), base), 0);
  });

  it('a hook that changes a tensor shape is rejected and the cache is left as it was', () => {
    const dec = new ReferenceDecoder(weights);
    dec.step({ tokens: [BOS] });
    dec.addHook('blocks.1.attn.hook_z', (z) => z.slice(1));
    assert.throws(() => dec.step({ tokens: [400, 401] }), /changed the tensor's shape/);
    assert.equal(dec.length, 1);
    assert.throws(() => dec.addHook('blocks.9.attn.hook_z', () => undefined), /unknown hook point/);
  });

  it('rotate_half with permuted wq/wk rows equals the interleaved original', () => {
    const w = weights;
    const c = w.config;
    const permuted: DecoderWeights = {
      ...w,
      config: { ...c, ropeStyle: 'rotate_half' },
      layers: w.layers.map((l) => ({
        ...l,
        wq: toRotateHalf(l.wq, c.nHeads, c.headDim, c.dim),
        wk: toRotateHalf(l.wk, c.nKvHeads, c.headDim, c.dim),
      })),
    };
    const a = new ReferenceDecoder(w).step({ tokens: prompt30 });
    const b = new ReferenceDecoder(permuted).step({ tokens: prompt30 });
    assert.ok(maxAbsDiff(a, b) <= 1e-9);
  });

  it('refuses to run past its KV capacity', () => {
    const dec = new ReferenceDecoder(weights, { capacity: 4 });
    dec.step({ tokens: [BOS, 400, 401] });
    assert.throws(() => dec.step({ tokens: [402, 403] }), /capacity/);
    assert.equal(dec.length, 3);
  });
});

describe('ReferenceDecoder on aidreams260K (MHA)', () => {
  it('follows run.c greedily and produces finite logits', () => {
    const w = load(aidreams260K.checkpoint);
    assert.equal(w.config.nHeads, w.config.nKvHeads);
    const dec = new ReferenceDecoder(w);
    const ids = greedy(dec, 32);
    // run.c (llama2.c 350e04f) with -t 0 -n 32 -i "" on the same checkpoint generates these ids.
    assert.deepEqual(ids, [
      319, 459, 355, 260, 275, 429, 339, 315, 374, 327, 446, 262, 421, 392, 275, 280,
      269, 440, 270, 283, 446, 299, 303, 266, 358, 430, 312, 379, 441, 260, 446, 262,
    ]);
    dec.reset();
    const logits = dec.step({ tokens: [BOS, ...ids] });
    assert.equal(logits.length, ids.length + 1);
    for (const row of logits) {
      assert.equal(row.length, w.config.vocabSize);
      assert.ok(row.every(Number.isFinite));
    }
  });
});
