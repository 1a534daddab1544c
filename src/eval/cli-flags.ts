/** Flag checks shared by `attune eval` and `attune profile`: bad input is a usage error, exit 2. */
export class UsageError extends Error {}

export function intFlag(name: string, v: string, min: number): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

export function numberFlag(name: string, v: string, ok: (n: number) => boolean, range: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new UsageError(`--${name} must be a number ${range}, got '${v}'`);
  return n;
}

/** "0-4", "2,3", "0-1,4" → sorted distinct layers, each < nLayers. */
export function layersFlag(v: string, nLayers: number): number[] {
  const out = new Set<number>();
  for (const part of v.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new UsageError(`--layers: '${part}' is not a layer or a range like 0-4`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new UsageError(`--layers: range '${part}' is backwards`);
    for (let l = from; l <= to; l++) {
      if (l >= nLayers) throw new UsageError(`--layers: layer ${l} does not exist; the model has layers 0-${nLayers - 1}`);
      out.add(l);
    }
  }
  return [...out].sort((a, b) => a - b);
}
