import { randomBytes } from 'node:crypto';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/** A source of uniform numbers in [0, 1). Sampling depends only on this, so tests can script it. */
export interface UniformSource {
  nextUniform(): number;
}

const MASK64 = (1n << 64n) - 1n;
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;

/** One SplitMix64 step: returns the advanced state and its output. */
function splitMix64(state: bigint): [bigint, bigint] {
  const next = (state + GOLDEN_GAMMA) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return [next, z ^ (z >> 31n)];
}

function int32(x: bigint): number {
  return Number(BigInt.asIntN(32, x));
}

/**
 * A row's own PRNG (xoroshiro128+ from pure-rand). Each row owns one, so a seeded row's tokens do not
 * depend on which other rows share its batch or in which order rows are sampled.
 */
export class RowRng implements UniformSource {
  private constructor(private readonly gen: RandomGenerator) {}

  /**
   * pure-rand's own `xoroshiro128plus(seed)` puts the seed straight into the state, so its first output
   * is `~seed` and neighbouring seeds (1, 2, 3…) would draw nearly the same first uniform and sample the
   * same first token. Expanding the seed through SplitMix64, as the xoroshiro authors recommend, avoids
   * that and also keeps all 64 bits of an OpenAI-style int64 seed.
   */
  static fromSeed(seed: number): RowRng {
    if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
    const [s1, z1] = splitMix64(BigInt.asUintN(64, BigInt(seed)));
    const [, z2] = splitMix64(s1);
    // pure-rand's state order is [s0 high, s0 low, s1 high, s1 low].
    return new RowRng(xoroshiro128plusFromState([int32(z1 >> 32n), int32(z1), int32(z2 >> 32n), int32(z2)]));
  }

  static fromEntropy(): RowRng {
    const b = randomBytes(16);
    const state = [b.readInt32LE(0), b.readInt32LE(4), b.readInt32LE(8), b.readInt32LE(12)];
    // The all-zero state is xoroshiro's one fixed point.
    if (!state.some((w) => w !== 0)) state[3] = 1;
    return new RowRng(xoroshiro128plusFromState(state));
  }

  /** 53 random bits; consumes exactly two 32-bit outputs of the generator. */
  nextUniform(): number {
    return uniformFloat64(this.gen);
  }
}

/** `seed` undefined means a fresh seed from the OS CSPRNG, as for an OpenAI request without `seed`. */
export function createRowRng(seed: number | undefined): RowRng {
  return seed === undefined ? RowRng.fromEntropy() : RowRng.fromSeed(seed);
}
