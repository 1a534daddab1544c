/**
 * A float64 forward pass over `DecoderWeights`, written for clarity rather than speed. It is the
 * ground truth that the compiled ONNX graph and each calibrator's graph fragment are compared
 * against, so it mirrors the graph's hook points (names, shapes, masking) exactly and lets a
 * calibrator's own float64 reference be expressed as a hook callback.
 */
import type { DecoderConfig, DecoderWeights } from '../../models/checkpoint/decoder-weights.js';

export type HookPoint = 'hook_resid_pre' | 'attn.hook_attn_scores' | 'attn.hook_pattern' | 'attn.hook_z';

export const HOOK_POINTS: readonly HookPoint[] = [
  'hook_resid_pre',
  'attn.hook_attn_scores',
  'attn.hook_pattern',
  'attn.hook_z',
];

/** TransformerLens-style names, as the ONNX graph spells them. */
export type HookName = `blocks.${number}.${HookPoint}`;

export function hookName(layer: number, point: HookPoint): HookName {
  return `blocks.${layer}.${point}`;
}

/** Every hook name a model with `nLayers` layers exposes, in forward order. */
export function allHookNames(nLayers: number): HookName[] {
  const names: HookName[] = [];
  for (let l = 0; l < nLayers; l++) for (const p of HOOK_POINTS) names.push(hookName(l, p));
  return names;
}

export interface HookContext {
  name: HookName;
  point: HookPoint;
  layer: number;
  /** Query head, for the three attention hooks; absent for hook_resid_pre. */
  head?: number;
  /** The kv head that `head` reads (they differ under GQA); absent for hook_resid_pre. */
  kvHead?: number;
  /** Absolute positions of the tensor's rows: n..n+T-1. */
  queryPositions: readonly number[];
  /** n+T: the length of the key axis in attention hooks, whose index is the absolute position. */
  keyCount: number;
}

/**
 * Receives one tensor as rows (`hook_resid_pre`: T × dim; `hook_attn_scores` and `hook_pattern`:
 * T × keyCount for one head; `hook_z`: T × headDim for one head). It may edit the rows in place,
 * or return a replacement of the same shape; returning nothing keeps the (possibly edited) input.
 */
export type HookFn = (tensor: Float64Array[], ctx: HookContext) => Float64Array[] | void;

/** Token ids, or input embeddings (rows of `dim`, as an `inputs_embeds` graph input would take). */
export type StepInput = { tokens: readonly number[] } | { embeds: readonly ArrayLike<number>[] };

export interface ReferenceDecoderOptions {
  /** KV capacity in positions; defaults to the checkpoint's maxSeqLen. */
  capacity?: number;
}

interface Layer64 {
  attnNorm: Float64Array;
  wq: Float64Array;
  wk: Float64Array;
  wv: Float64Array;
  wo: Float64Array;
  bq: Float64Array | undefined;
  bk: Float64Array | undefined;
  bv: Float64Array | undefined;
  ffnNorm: Float64Array;
  wGate: Float64Array;
  wDown: Float64Array;
  wUp: Float64Array;
}

const HOOK_NAME_RE = /^blocks\.(\d+)\.(hook_resid_pre|attn\.hook_attn_scores|attn\.hook_pattern|attn\.hook_z)$/;

const f64 = (a: Float32Array): Float64Array => Float64Array.from(a);
const f64opt = (a: Float32Array | undefined): Float64Array | undefined => (a ? Float64Array.from(a) : undefined);

/** `W` is row-major [out, in]. */
function matvec(w: Float64Array, x: Float64Array, out: number, bias?: Float64Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let i = 0; i < out; i++) {
    let s = bias ? bias[i]! : 0;
    const row = i * n;
    for (let j = 0; j < n; j++) s += w[row + j]! * x[j]!;
    y[i] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, weight: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = weight[i]! * (inv * x[i]!);
  return y;
}

/**
 * Pair p's frequency θ^(−2p/hd), scaled as transformers' rope_init functions do: `linear` divides by
 * the factor; `llama3` blends the unscaled and the divided frequency by how many of its wavelengths
 * fit in the original context, clamped to pure unscaled (high frequencies) or pure divided (low).
 */
function frequency(p: number, hd: number, c: DecoderConfig): number {
  const f = Math.pow(c.ropeTheta, -(2 * p) / hd);
  const s = c.ropeScaling;
  if (!s) return f;
  if (s.type === 'linear') return f / s.factor;
  const fitting = s.originalMaxPositionEmbeddings / ((2 * Math.PI) / f);
  const blend = Math.min(1, Math.max(0, (fitting - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)));
  return blend * f + (1 - blend) * (f / s.factor);
}

/**
 * Rotates every head of `x` in place for position `pos`. Both styles use the same frequency for
 * pair p; they differ only in which two dimensions form pair p.
 */
function applyRope(x: Float64Array, nHeads: number, hd: number, pos: number, c: DecoderConfig): void {
  const half = hd / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = h * hd;
    for (let p = 0; p < half; p++) {
      const angle = pos * frequency(p, hd, c);
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const i0 = c.ropeStyle === 'interleaved' ? base + 2 * p : base + p;
      const i1 = c.ropeStyle === 'interleaved' ? i0 + 1 : i0 + half;
      const a = x[i0]!;
      const b = x[i1]!;
      x[i0] = a * cos - b * sin;
      x[i1] = a * sin + b * cos;
    }
  }
}

export class ReferenceDecoder {
  readonly config: DecoderConfig;
  readonly capacity: number;
  readonly #embedding: Float64Array;
  readonly #lmHead: Float64Array;
  readonly #finalNorm: Float64Array;
  readonly #layers: Layer64[];
  /** [layer][position] → post-RoPE keys / values of all kv heads (nKvHeads·hd). */
  readonly #keys: Float64Array[][];
  readonly #values: Float64Array[][];
  #hooks: { name: HookName | '*'; fn: HookFn }[] = [];

  constructor(weights: DecoderWeights, options: ReferenceDecoderOptions = {}) {
    const c = weights.config;
    if (c.headDim % 2 !== 0) throw new Error(`headDim ${c.headDim} must be even for RoPE`);
    if (c.nHeads % c.nKvHeads !== 0) throw new Error(`nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
    this.config = { ...c };
    this.capacity = options.capacity ?? c.maxSeqLen;
    this.#embedding = f64(weights.tokenEmbedding);
    // Tied heads share one converted copy, as the float32 checkpoint shares one array.
    this.#lmHead = weights.lmHead === weights.tokenEmbedding ? this.#embedding : f64(weights.lmHead);
    this.#finalNorm = f64(weights.finalNorm);
    this.#layers = weights.layers.map((l) => ({
      attnNorm: f64(l.attnNorm),
      wq: f64(l.wq),
      wk: f64(l.wk),
      wv: f64(l.wv),
      wo: f64(l.wo),
      bq: f64opt(l.bq),
      bk: f64opt(l.bk),
      bv: f64opt(l.bv),
      ffnNorm: f64(l.ffnNorm),
      wGate: f64(l.wGate),
      wDown: f64(l.wDown),
      wUp: f64(l.wUp),
    }));
    this.#keys = this.#layers.map(() => []);
    this.#values = this.#layers.map(() => []);
  }

  /** Positions already in the KV cache. */
  get length(): number {
    return this.#keys[0]?.length ?? 0;
  }

  /** Empties the KV cache; hooks stay registered. */
  reset(): void {
    for (const k of this.#keys) k.length = 0;
    for (const v of this.#values) v.length = 0;
  }

  /**
   * Registers `fn` for one hook name, or for every hook point with '*'. Hooks at the same point run
   * in registration order, each seeing the previous one's output. Returns a function that removes it.
   */
  addHook(name: HookName | '*', fn: HookFn): () => void {
    if (name !== '*') {
      const m = HOOK_NAME_RE.exec(name);
      if (!m || Number(m[1]) >= this.config.nLayers) throw new Error(`unknown hook point "${name}"`);
    }
    const entry = { name, fn };
    this.#hooks.push(entry);
    return () => {
      this.#hooks = this.#hooks.filter((e) => e !== entry);
    };
  }

  clearHooks(): void {
    this.#hooks = [];
  }

  /**
   * Appends positions n..n+T-1 in one chunk (each attends causally to all n+T keys) and returns
   * the logits for each of the T new positions. On error the cache is left as it was.
   */
  step(input: StepInput): Float64Array[] {
    const rows = this.#embed(input);
    const n = this.length;
    const t = rows.length;
    if (n + t > this.capacity) throw new Error(`KV capacity ${this.capacity} exceeded: ${n} cached + ${t} new`);
    try {
      return this.#forward(rows, n);
    } catch (e) {
      for (const k of this.#keys) k.length = n;
      for (const v of this.#values) v.length = n;
      throw e;
    }
  }

  #embed(input: StepInput): Float64Array[] {
    const { dim, vocabSize } = this.config;
    if ('tokens' in input) {
      return input.tokens.map((id) => {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`token id ${id} outside [0, ${vocabSize})`);
        return this.#embedding.slice(id * dim, (id + 1) * dim);
      });
    }
    return input.embeds.map((e, i) => {
      if (e.length !== dim) throw new Error(`embeds[${i}] has ${e.length} values, expected ${dim}`);
      return Float64Array.from(e);
    });
  }

  #forward(input: Float64Array[], n: number): Float64Array[] {
    const c = this.config;
    const { dim, hiddenDim, nHeads, nKvHeads, headDim: hd, rmsNormEps: eps } = c;
    const t = input.length;
    const keyCount = n + t;
    const queryPositions = Array.from({ length: t }, (_, i) => n + i);
    const group = nHeads / nKvHeads;
    const scale = 1 / Math.sqrt(hd);
    let x = input;

    for (let l = 0; l < c.nLayers; l++) {
      const w = this.#layers[l]!;
      const ctx = (point: HookPoint, head?: number): HookContext => ({
        name: hookName(l, point),
        point,
        layer: l,
        ...(head === undefined ? {} : { head, kvHead: Math.floor(head / group) }),
        queryPositions: [...queryPositions],
        keyCount,
      });

      x = this.#runHooks(x, ctx('hook_resid_pre'), dim);

      const xn = x.map((r) => rmsNorm(r, w.attnNorm, eps));
      const q = xn.map((r) => matvec(w.wq, r, nHeads * hd, w.bq));
      const k = xn.map((r) => matvec(w.wk, r, nKvHeads * hd, w.bk));
      const v = xn.map((r) => matvec(w.wv, r, nKvHeads * hd, w.bv));
      for (let i = 0; i < t; i++) {
        applyRope(q[i]!, nHeads, hd, n + i, c);
        applyRope(k[i]!, nKvHeads, hd, n + i, c);
      }
      const keys = this.#keys[l]!;
      const values = this.#values[l]!;
      keys.push(...k);
      values.push(...v);

      const z = Array.from({ length: t }, () => new Float64Array(nHeads * hd));
      for (let h = 0; h < nHeads; h++) {
        const kvOff = Math.floor(h / group) * hd;
        const qOff = h * hd;

        let scores: Float64Array[] = q.map((qi, i) => {
          const row = new Float64Array(keyCount).fill(-Infinity);
          for (let s = 0; s <= n + i; s++) {
            const ks = keys[s]!;
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += qi[qOff + d]! * ks[kvOff + d]!;
            row[s] = dot * scale;
          }
          return row;
        });
        scores = this.#runHooks(scores, ctx('attn.hook_attn_scores', h), keyCount);

        let pattern = scores.map(softmax);
        pattern = this.#runHooks(pattern, ctx('attn.hook_pattern', h), keyCount);

        // Sums over every key, as the graph's P·V MatMul does: masked weights are exactly 0.
        let zh: Float64Array[] = pattern.map((p) => {
          const out = new Float64Array(hd);
          for (let s = 0; s < keyCount; s++) {
            const ps = p[s]!;
            const vs = values[s]!;
            for (let d = 0; d < hd; d++) out[d] += ps * vs[kvOff + d]!;
          }
          return out;
        });
        zh = this.#runHooks(zh, ctx('attn.hook_z', h), hd);
        for (let i = 0; i < t; i++) z[i]!.set(zh[i]!, qOff);
      }

      x = x.map((r, i) => {
        const attn = matvec(w.wo, z[i]!, dim);
        const h1 = r.map((xv, j) => xv + attn[j]!);
        const hn = rmsNorm(h1, w.ffnNorm, eps);
        const gate = matvec(w.wGate, hn, hiddenDim);
        const up = matvec(w.wUp, hn, hiddenDim);
        const act = gate.map((g, j) => (g / (1 + Math.exp(-g))) * up[j]!);
        const down = matvec(w.wDown, act, dim);
        return h1.map((hv, j) => hv + down[j]!);
      });
    }

    return x.map((r) => matvec(this.#lmHead, rmsNorm(r, this.#finalNorm, eps), c.vocabSize));
  }

  #runHooks(tensor: Float64Array[], ctx: HookContext, width: number): Float64Array[] {
    let cur = tensor;
    for (const { name, fn } of this.#hooks) {
      if (name !== '*' && name !== ctx.name) continue;
      const out = fn(cur, ctx);
      if (out !== undefined) cur = out;
      if (cur.length !== tensor.length || cur.some((r) => r.length !== width)) {
        throw new Error(`hook at ${ctx.name} changed the tensor's shape (expected ${tensor.length} × ${width})`);
      }
    }
    return cur;
  }
}

/** Masked entries (-Infinity) come out exactly 0 because exp(-Infinity) is 0. */
function softmax(row: Float64Array): Float64Array {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  const out = new Float64Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const e = Math.exp(row[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < row.length; i++) out[i] = out[i]! / sum;
  return out;
}

/** First index of the largest value, the tie rule of llama2.c's sample_argmax. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}
