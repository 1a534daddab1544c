/** Weight re-layouts done once at compile time, so the graph needs no Transpose at run time. */

/** `[rows, cols]` row-major → `[cols, rows]` row-major. */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let col = 0; col < cols; col++) out[col * rows + r] = a[base + col]!;
  }
  return out;
}

/** Side-by-side concatenation of `[rows, widths[i]]` matrices into `[rows, Σ widths]`. */
export function concatColumns(parts: Float32Array[], rows: number, widths: number[]): Float32Array {
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  let colOffset = 0;
  parts.forEach((part, i) => {
    const w = widths[i]!;
    for (let r = 0; r < rows; r++) out.set(part.subarray(r * w, (r + 1) * w), r * total + colOffset);
    colOffset += w;
  });
  return out;
}
