/**
 * A float64 forward pass of a LLaVA vision side (CLIP vision transformer, feature selection,
 * projector) and the splice of image features into a prompt's embeddings, written for clarity rather
 * than speed. It is the ground truth the compiled vision graph is compared against, and it keeps every
 * hidden state and every block's attention probabilities so calibrator references (PAINT's CLS
 * attention selection) can read them, as transformers' `output_hidden_states` / `output_attentions` do.
 */
import type { DecoderWeights } from '../../models/checkpoint/decoder-weights.js';
import {
  patchesPerSide,
  visionSeqLen,
  type LayerNormWeights,
  type LinearWeights,
  type VisionActivation,
  type VisionWeights,
} from '../../models/checkpoint/vision-weights.js';

export interface ReferenceVisionOutput {
  /** The projected image tokens: tokensPerImage rows of lmDim. */
  features: Float64Array[];
  /** transformers' hidden_states: [0] the pre_layrnorm output, [k] block k−1's output; S rows of hidden. */
  hiddenStates: Float64Array[][];
  /** attentions[l][head][query] = softmax row over the S keys, for every computed block l. */
  attentions: Float64Array[][][];
}

export interface ReferenceVisionOptions {
  /** Blocks to compute (default: the featureLayer blocks the features need). */
  blocks?: number;
}

const f64 = (a: Float32Array) => Float64Array.from(a);

/** `w` row-major [out, in]. */
function affine(w: Float64Array, b: Float64Array | undefined, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let i = 0; i < out; i++) {
    let s = b ? b[i]! : 0;
    for (let j = 0; j < n; j++) s += w[i * n + j]! * x[j]!;
    y[i] = s;
  }
  return y;
}

function layerNorm(x: Float64Array, w: { weight: Float64Array; bias: Float64Array }, eps: number): Float64Array {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) ** 2;
  variance /= x.length;
  const inv = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * inv * w.weight[i]! + w.bias[i]!);
}

/**
 * erf to double precision from the all-positive series erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (2n+1)!!
 * (no cancellation, unlike the Taylor series); beyond |x| = 6, erf is ±1 to double precision.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; term > sum * 1e-17; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

export function activate(x: number, kind: VisionActivation): number {
  return kind === 'quick_gelu' ? x / (1 + Math.exp(-1.702 * x)) : 0.5 * x * (1 + erf(x / Math.SQRT2));
}

function softmax(row: Float64Array): Float64Array {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  const e = row.map((v) => Math.exp(v - max));
  let sum = 0;
  for (const v of e) sum += v;
  return e.map((v) => v / sum);
}

interface Linear64 {
  weight: Float64Array;
  bias: Float64Array | undefined;
}
const lin = (l: LinearWeights): Linear64 => ({ weight: f64(l.weight), bias: l.bias ? f64(l.bias) : undefined });
const norm = (n: LayerNormWeights) => ({ weight: f64(n.weight), bias: f64(n.bias) });

export class ReferenceVision {
  readonly #w: VisionWeights;
  readonly #layers;
  readonly #patch: Float64Array;
  readonly #cls: Float64Array;
  readonly #pos: Float64Array;
  readonly #pre;
  readonly #proj1: Linear64;
  readonly #proj2: Linear64;

  constructor(weights: VisionWeights) {
    this.#w = weights;
    this.#patch = f64(weights.patchEmbedding);
    this.#cls = f64(weights.classEmbedding);
    this.#pos = f64(weights.positionEmbedding);
    this.#pre = norm(weights.preLayerNorm);
    this.#layers = weights.layers.map((l) => ({
      ln1: norm(l.layerNorm1), q: lin(l.q), k: lin(l.k), v: lin(l.v), out: lin(l.out), ln2: norm(l.layerNorm2), fc1: lin(l.fc1), fc2: lin(l.fc2),
    }));
    this.#proj1 = lin(weights.projector.linear1);
    this.#proj2 = lin(weights.projector.linear2);
  }

  get config() {
    return this.#w.config;
  }

  /** One image, `[C, H, W]` as preprocessing produces it. */
  forward(pixels: ArrayLike<number>, options: ReferenceVisionOptions = {}): ReferenceVisionOutput {
    const c = this.#w.config;
    const D = c.hiddenSize, P = c.patchSize, C = c.nChannels, side = c.imageSize, grid = patchesPerSide(c), S = visionSeqLen(c);
    if (pixels.length !== C * side * side) throw new Error(`pixels: ${pixels.length} values, expected ${C}×${side}×${side}`);
    const blocks = options.blocks ?? c.featureLayer;
    if (blocks < c.featureLayer || blocks > this.#layers.length) throw new Error(`blocks ${blocks} outside ${c.featureLayer}..${this.#layers.length}`);

    // Patch embedding: a stride-P convolution without bias, patches in row-major order; CLS first.
    const rows: Float64Array[] = [this.#cls.slice()];
    for (let py = 0; py < grid; py++) {
      for (let px = 0; px < grid; px++) {
        const e = new Float64Array(D);
        for (let o = 0; o < D; o++) {
          let s = 0;
          for (let ch = 0; ch < C; ch++) {
            for (let ky = 0; ky < P; ky++) {
              for (let kx = 0; kx < P; kx++) {
                s += this.#patch[((o * C + ch) * P + ky) * P + kx]! * pixels[(ch * side + py * P + ky) * side + px * P + kx]!;
              }
            }
          }
          e[o] = s;
        }
        rows.push(e);
      }
    }
    let x = rows.map((r, i) => layerNorm(r.map((v, d) => v + this.#pos[i * D + d]!), this.#pre, c.layerNormEps));
    const hiddenStates = [x];
    const attentions: Float64Array[][][] = [];
    const hd = c.headDim;
    const scale = hd ** -0.5;

    for (let l = 0; l < blocks; l++) {
      const w = this.#layers[l]!;
      const xn = x.map((r) => layerNorm(r, w.ln1, c.layerNormEps));
      const q = xn.map((r) => affine(w.q.weight, w.q.bias, r, D).map((v) => v * scale));
      const k = xn.map((r) => affine(w.k.weight, w.k.bias, r, D));
      const v = xn.map((r) => affine(w.v.weight, w.v.bias, r, D));
      const z = Array.from({ length: S }, () => new Float64Array(D));
      const layerAttn: Float64Array[][] = [];
      for (let h = 0; h < c.nHeads; h++) {
        const probs = q.map((qi) => {
          const scores = new Float64Array(S);
          for (let j = 0; j < S; j++) {
            let s = 0;
            for (let d = 0; d < hd; d++) s += qi[h * hd + d]! * k[j]![h * hd + d]!;
            scores[j] = s;
          }
          return softmax(scores);
        });
        layerAttn.push(probs);
        for (let i = 0; i < S; i++) {
          for (let j = 0; j < S; j++) {
            const p = probs[i]![j]!;
            for (let d = 0; d < hd; d++) z[i]![h * hd + d]! += p * v[j]![h * hd + d]!;
          }
        }
      }
      attentions.push(layerAttn);
      x = x.map((r, i) => {
        const mid = r.map((val, d) => val + affine(w.out.weight, w.out.bias, z[i]!, D)[d]!);
        const hidden = affine(w.fc1.weight, w.fc1.bias, layerNorm(mid, w.ln2, c.layerNormEps), c.intermediateSize).map((val) => activate(val, c.hiddenAct));
        const down = affine(w.fc2.weight, w.fc2.bias, hidden, D);
        return mid.map((val, d) => val + down[d]!);
      });
      hiddenStates.push(x);
    }

    const selected = hiddenStates[c.featureLayer]!.slice(c.selectStrategy === 'default' ? 1 : 0);
    const features = selected.map((r) => {
      const h = affine(this.#proj1.weight, this.#proj1.bias, r, c.lmDim).map((val) => activate(val, c.projectorAct));
      return affine(this.#proj2.weight, this.#proj2.bias, h, c.lmDim);
    });
    return { features, hiddenStates, attentions };
  }
}

/**
 * The decoder's input embeddings for a prompt with images: each position holding `imageTokenId` takes
 * the next image feature row, images in order (transformers' masked_scatter); every other position
 * takes its token's embedding. The result is `{ embeds }` input for ReferenceDecoder.step().
 */
export function spliceImageFeatures(
  decoder: Pick<DecoderWeights, 'config' | 'tokenEmbedding'>,
  promptIds: readonly number[],
  imageTokenId: number,
  images: readonly (readonly Float64Array[])[],
): Float64Array[] {
  const dim = decoder.config.dim;
  const rows = images.flat();
  const slots = promptIds.filter((id) => id === imageTokenId).length;
  if (slots !== rows.length) throw new Error(`the prompt has ${slots} image tokens, but the images give ${rows.length} features`);
  let next = 0;
  return promptIds.map((id) => {
    if (id === imageTokenId) {
      const r = rows[next++]!;
      if (r.length !== dim) throw new Error(`an image feature has ${r.length} values, the decoder takes ${dim}`);
      return Float64Array.from(r);
    }
    return Float64Array.from(decoder.tokenEmbedding.subarray(id * dim, (id + 1) * dim));
  });
}
