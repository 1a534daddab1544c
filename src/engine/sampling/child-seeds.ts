/**
 * Seeds for the n choices of one seeded request. vLLM gives choice i `seed + i`; in JavaScript numbers
 * that collides near 2^53 (2^53 + 1 is not representable, so seed 2^53 − 8 with n = 16 gave 9 distinct
 * choices), and it makes choice 1 of seed s the same sampling as choice 0 of seed s + 1.
 *
 * Here choice 0 keeps the request's seed (so `n: 1` and the first choice of `n: k` agree, as in vLLM),
 * and choice i > 0 gets SplitMix64's finalizer applied to (seed, i), keeping its top 53 bits: a safe
 * integer, exactly representable, and any two choices of one request are different by construction
 * (a repeat, about one chance in 2^53 per pair, is re-derived).
 */

const MASK64 = (1n << 64n) - 1n;
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;

function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

export function childSeeds(seed: number, n: number): number[] {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const base = BigInt.asUintN(64, BigInt(seed));
  const seeds = [seed];
  const taken = new Set(seeds);
  for (let i = 1, salt = 0n; seeds.length < n; i++) {
    let child = Number(mix64((base + (BigInt(i) + salt) * GOLDEN_GAMMA) & MASK64) >> 11n);
    while (taken.has(child)) child = Number(mix64((base + (BigInt(i) + ++salt) * GOLDEN_GAMMA) & MASK64) >> 11n);
    taken.add(child);
    seeds.push(child);
  }
  return seeds;
}
