/**
 * Seeded randomness for test and load generators, on the engine's own per-row generator (pure-rand
 * xoroshiro128+, seed expanded by SplitMix64): a failing fuzz or soak run replays exactly from its
 * seed, and there is one PRNG in the project, not one per folder.
 */
import { RowRng } from '../../src/engine/sampling/rng.js';

export class Prng {
  private readonly rng: RowRng;

  constructor(readonly seed: number) {
    this.rng = RowRng.fromSeed(seed);
  }

  u32(): number {
    return Math.floor(this.rng.nextUniform() * 4294967296);
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.rng.nextUniform();
  }

  /** Uniform integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.float() * items.length)]!;
  }

  /** Picks by weight: `[[weight, value], ...]`. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    const total = entries.reduce((a, [w]) => a + w, 0);
    let x = this.float() * total;
    for (const [w, v] of entries) {
      if ((x -= w) < 0) return v;
    }
    return entries[entries.length - 1]![1];
  }

  /** An independent stream, so adding draws to one generator does not shift another's. */
  fork(): Prng {
    return new Prng(this.u32());
  }
}
