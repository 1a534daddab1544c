/**
 * ACT's sink rule in TypeScript, with the exact float32 arithmetic of the graph fragment, so reports
 * and tests can recompute what the graph decided from its running column sums:
 *   key j (0-based position) is detected when colsum[j] > τ·(n − j), n = queries seen so far;
 *   S = the detected keys minus the lowest-index one ("drop the first detected", official D[1:]).
 */
const f = Math.fround;

/** Positions in S for one head, given its running column sums over positions [0, n). */
export function sinkSet(colsum: ArrayLike<number>, n: number, threshold: number): number[] {
  const tau = f(threshold);
  const detected: number[] = [];
  for (let j = 0; j < n; j++) if (colsum[j]! > f(tau * f(n - j))) detected.push(j);
  return detected.slice(1);
}
