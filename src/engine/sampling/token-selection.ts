/**
 * Choosing the next token from processed logits.
 *
 * Order (vLLM V1's sampler, which attune follows; logits processors have already run):
 *   1. temperature < 1e-5 (vLLM's _SAMPLING_EPS): greedy argmax, ties to the lowest id; top-k, top-p and
 *      min-p are ignored and no random number is drawn.
 *   2. temperature scaling: p_i ∝ exp((l_i − max) / T).
 *   3. min-p: drop tokens with p_i < minP · p_max.
 *   4. top-k: keep the k most probable survivors.
 *   5. top-p: keep the smallest most-probable set whose mass, renormalised over the survivors of 3–4,
 *      reaches p (the token that crosses p is kept, so at least one token always survives).
 *   6. draw one uniform u from the row's PRNG and invert the CDF of the survivors, in token-id order.
 *
 * Every filter keeps an upper set of the distribution, so each is applied as a threshold. Tokens tied at
 * a threshold are all kept, as vLLM's top-k does (`logits < kth_value` is what it masks); top-k can so
 * keep more than k tokens when the k-th value is tied.
 *
 * Cost, for vocabulary V: min-p and top-k are decided on logits (`p_i ≥ minP · p_max` is
 * `l_i ≥ max + T · ln(minP)`; top-k is a single pass with a k-entry heap), so only their survivors are
 * exponentiated. Without them all V tokens need an exp (the normaliser needs them), which dominates.
 * top-p buckets the survivors by exponent in that same pass and only selects within the boundary
 * bucket. No step sorts the vocabulary, and none allocates vocabulary-sized memory once the scratch
 * has grown to V.
 *
 * Scratch buffers are reused: one SamplingScratch can serve every row that is sampled on the same
 * thread, one after another.
 */
import type { SamplingParams } from '../types.js';
import type { UniformSource } from './rng.js';

export type SelectionParams = Pick<SamplingParams, 'temperature' | 'topK' | 'topP' | 'minP'>;

/** vLLM's _SAMPLING_EPS: a smaller temperature is greedy, since dividing by it would overflow. */
export const GREEDY_TEMPERATURE_EPS = 1e-5;

// Below this size a typed-array sort beats further partitioning; the round cap bounds quickselect's
// quadratic worst case on adversarial inputs.
const SMALL_RANGE = 16;
const MAX_ROUNDS = 48;
// top-p buckets survivors by exponent (max − l) / T, 1/64 nat per bucket, up to an exponent of 64
// (weights below 1e-27 share the last bucket), so that quickselect only ever sees one bucket.
const BUCKETS_PER_NAT = 64;
const NUCLEUS_BUCKETS = 64 * BUCKETS_PER_NAT;
const LAST_BUCKET = NUCLEUS_BUCKETS - 1;

export function isGreedy(params: Pick<SamplingParams, 'temperature'>): boolean {
  return params.temperature < GREEDY_TEMPERATURE_EPS;
}

/** Throws RangeError for values no filter can interpret; the API edge should have rejected them first. */
export function validateSelectionParams(params: SelectionParams): void {
  const { temperature, topK, topP, minP } = params;
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new RangeError(`temperature must be finite and >= 0, got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new RangeError(`topK must be an integer >= 0 (0 = off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  if (!(minP >= 0 && minP <= 1)) throw new RangeError(`minP must be in [0, 1], got ${minP}`);
}

export class SamplingScratch {
  /** Surviving token ids, ascending, valid in [0, count) after filterCandidates. */
  ids = new Int32Array(0);
  /** Their unnormalised probabilities exp((l − max) / T), aligned with `ids`. */
  weights = new Float64Array(0);
  /** Sum of weights[0, count). */
  mass = 0;
  count = 0;
  /** Permutable copy for selection (and the top-k heap), so `ids`/`weights` keep their id order. */
  work = new Float64Array(0);
  /** Top-p: each survivor's exponent bucket (aligned with `ids`), and each bucket's mass. */
  bucketOf = new Uint16Array(0);
  readonly bucketMass = new Float64Array(NUCLEUS_BUCKETS);
  /** Pre-processing logits, kept when processors would otherwise overwrite what logprobs need. */
  raw = new Float32Array(0);

  ensure(vocabSize: number): void {
    if (this.ids.length >= vocabSize) return;
    this.ids = new Int32Array(vocabSize);
    this.weights = new Float64Array(vocabSize);
    this.work = new Float64Array(vocabSize);
    this.bucketOf = new Uint16Array(vocabSize);
  }

  /** Copies `logits` into the reusable `raw` buffer and returns a view of exactly its length. */
  keepRaw(logits: Float32Array): Float32Array {
    if (this.raw.length < logits.length) this.raw = new Float32Array(logits.length);
    const view = this.raw.length === logits.length ? this.raw : this.raw.subarray(0, logits.length);
    view.set(logits);
    return view;
  }

  /** The surviving ids as a plain array (allocates: for tests and diagnostics). */
  candidateIds(): number[] {
    return Array.from(this.ids.subarray(0, this.count));
  }
}

/** Index of the largest logit, lowest id on ties; one pass. NaN never wins. */
export function argmaxToken(logits: Float32Array): number {
  let best = -Infinity;
  let bestId = -1;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > best) {
      best = v;
      bestId = i;
    }
  }
  if (bestId < 0) throw new RangeError('no token has a logit above -Infinity');
  return bestId;
}

/**
 * Applies temperature, min-p, top-k and top-p to `logits` (not modified) and leaves the survivors in
 * `scratch`. Returns their count. Only meaningful for non-greedy parameters.
 */
export function filterCandidates(logits: Float32Array, params: SelectionParams, scratch: SamplingScratch): number {
  const n = logits.length;
  scratch.ensure(n);
  const { ids, weights } = scratch;

  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = logits[i]!;
    if (v > max) max = v;
  }
  if (!Number.isFinite(max)) throw new RangeError(`cannot sample: the largest logit is ${max}`);

  const t = params.temperature;
  const invT = 1 / t;
  let cut = params.minP > 0 ? max + t * Math.log(params.minP) : -Infinity;
  if (params.topK > 0 && params.topK < n) cut = Math.max(cut, kthLargestLogit(logits, params.topK, cut, scratch.work));

  let count = 0;
  let mass = 0;
  if (params.topP < 1) {
    // Same pass as below, also bucketing each survivor by its exponent for the top-p search; kept as a
    // separate loop so the common path stays minimal.
    const { bucketOf, bucketMass } = scratch;
    const scale = invT * BUCKETS_PER_NAT;
    bucketMass.fill(0);
    for (let i = 0; i < n; i++) {
      const v = logits[i]!;
      if (v >= cut && v > -Infinity) {
        const x = (max - v) * scale;
        const b = x < LAST_BUCKET ? x | 0 : LAST_BUCKET;
        const w = Math.exp((v - max) * invT);
        ids[count] = i;
        weights[count] = w;
        bucketOf[count] = b;
        bucketMass[b] += w;
        mass += w;
        count++;
      }
    }
    count = keepAtLeast(ids, weights, count, bucketedNucleusThreshold(scratch, count, params.topP * mass));
    mass = 0;
    for (let j = 0; j < count; j++) mass += weights[j]!;
  } else {
    for (let i = 0; i < n; i++) {
      const v = logits[i]!;
      // `v > -Infinity` also rejects NaN; the max itself always passes, so count >= 1.
      if (v >= cut && v > -Infinity) {
        const w = Math.exp((v - max) * invT);
        ids[count] = i;
        weights[count] = w;
        mass += w;
        count++;
      }
    }
  }

  scratch.count = count;
  scratch.mass = mass;
  return count;
}

/** Inverts the survivors' CDF at `u` ∈ [0, 1). */
export function sampleFiltered(scratch: SamplingScratch, u: number): number {
  const { ids, weights, count } = scratch;
  let r = u * scratch.mass;
  let last = -1;
  for (let j = 0; j < count; j++) {
    const w = weights[j]!;
    if (w > 0) {
      last = ids[j]!;
      r -= w;
      if (r < 0) return last;
    }
  }
  // Only reached when rounding left r a hair above the summed weights.
  return last;
}

/** The whole selection step for one row: greedy, or filter and draw exactly one uniform from `rng`. */
export function selectToken(logits: Float32Array, params: SelectionParams, scratch: SamplingScratch, rng: UniformSource): number {
  if (isGreedy(params)) return argmaxToken(logits);
  filterCandidates(logits, params, scratch);
  return sampleFiltered(scratch, rng.nextUniform());
}


function median3(a: number, b: number, c: number): number {
  if (a < b) return b < c ? b : a < c ? c : a;
  return a < c ? a : b < c ? c : b;
}

/** Compacts (ids, values) in place to the entries with value >= threshold, keeping their order. */
function keepAtLeast(ids: Int32Array, values: Float64Array, count: number, threshold: number): number {
  let w = 0;
  for (let j = 0; j < count; j++) {
    const v = values[j]!;
    if (v >= threshold) {
      ids[w] = ids[j]!;
      values[w] = v;
      w++;
    }
  }
  return w;
}

/**
 * Three-way partition of a[lo, hi) around `pivot` into [> pivot | == pivot | < pivot], reporting the
 * boundaries and the mass of the first two parts in `out` (reused, to keep the loop allocation-free).
 * Three-way, because logits are often heavily tied.
 */
function partition(a: Float64Array, lo: number, hi: number, pivot: number, out: PartitionResult): void {
  let gt = lo;
  let i = lo;
  let lt = hi;
  let massGt = 0;
  let massEq = 0;
  while (i < lt) {
    const v = a[i]!;
    if (v > pivot) {
      a[i] = a[gt]!;
      a[gt] = v;
      gt++;
      i++;
      massGt += v;
    } else if (v < pivot) {
      lt--;
      a[i] = a[lt]!;
      a[lt] = v;
    } else {
      i++;
      massEq += v;
    }
  }
  out.gt = gt;
  out.lt = lt;
  out.massGt = massGt;
  out.massEq = massEq;
}

interface PartitionResult {
  gt: number;
  lt: number;
  massGt: number;
  massEq: number;
}
const part: PartitionResult = { gt: 0, lt: 0, massGt: 0, massEq: 0 };

/**
 * The k-th largest logit among those >= `cut`, or -Infinity when fewer than k qualify; one pass with a
 * k-entry min-heap in `heap`. Once the heap is full almost every token fails one comparison.
 */
export function kthLargestLogit(logits: Float32Array, k: number, cut: number, heap: Float64Array): number {
  let size = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (size < k) {
      if (!(v >= cut && v > -Infinity)) continue;
      let c = size++;
      while (c > 0) {
        const parent = (c - 1) >> 1;
        if (heap[parent]! <= v) break;
        heap[c] = heap[parent]!;
        c = parent;
      }
      heap[c] = v;
    } else if (v > heap[0]!) {
      let c = 0;
      for (;;) {
        let child = 2 * c + 1;
        if (child >= k) break;
        if (child + 1 < k && heap[child + 1]! < heap[child]!) child++;
        if (heap[child]! >= v) break;
        heap[c] = heap[child]!;
        c = child;
      }
      heap[c] = v;
    }
  }
  return size < k ? -Infinity : heap[0]!;
}

/**
 * nucleusThreshold via the exponent buckets filled by filterCandidates: find the bucket where the
 * cumulative mass crosses `target` and resolve only that bucket's weights exactly. Earlier buckets hold
 * strictly larger logits, so they are kept whole; later ones are dropped whole.
 */
function bucketedNucleusThreshold(scratch: SamplingScratch, count: number, target: number): number {
  const { weights, work, bucketOf, bucketMass } = scratch;
  let above = 0;
  let boundary = -1;
  for (let b = 0; b <= LAST_BUCKET; b++) {
    const m = bucketMass[b]!;
    if (above + m >= target) {
      boundary = b;
      break;
    }
    above += m;
  }
  // Rounding kept the total a hair under the target: keep everything.
  if (boundary < 0) return 0;
  let g = 0;
  for (let j = 0; j < count; j++) if (bucketOf[j] === boundary) work[g++] = weights[j]!;
  return nucleusThreshold(work, g, target - above);
}

/**
 * The value t among a[0, n) (non-negative weights) with mass(a > t) < target <= mass(a >= t): keeping
 * every weight >= t is the smallest top set reaching `target`. A quickselect on mass instead of a sort,
 * so it is O(n) expected; permutes `a`.
 */
export function nucleusThreshold(a: Float64Array, n: number, target: number): number {
  let lo = 0;
  let hi = n;
  let above = 0;
  for (let round = 0; ; round++) {
    if (hi - lo <= SMALL_RANGE || round >= MAX_ROUNDS) {
      const sorted = a.subarray(lo, hi).sort();
      for (let j = sorted.length - 1; j >= 0; j--) {
        above += sorted[j]!;
        if (above >= target) return sorted[j]!;
      }
      // Rounding kept the total a hair under the target: keep everything.
      return sorted[0]!;
    }
    const pivot = median3(a[lo]!, a[(lo + hi) >>> 1]!, a[hi - 1]!);
    partition(a, lo, hi, pivot, part);
    if (above + part.massGt >= target) hi = part.gt;
    else if (above + part.massGt + part.massEq >= target) return pivot;
    else {
      above += part.massGt + part.massEq;
      lo = part.lt;
      if (lo >= hi) return pivot;
    }
  }
}
