/**
 * Feeds for a calibrator fragment run alone in onnxruntime (the spec-vector tests): one row's control
 * inputs, from the values its `writeInputs` recorded, every other element at its identity value.
 */
import ort from 'onnxruntime-node';
import type { Dim } from '../../models/onnx/graph-builder.js';
import type { RowInputSpec } from '../../models/compiler/hooks.js';

export function oneRowInputFeeds(
  specs: readonly RowInputSpec[],
  values: ReadonlyMap<string, ArrayLike<number> | number>,
  dimOf: (d: Dim) => number,
): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const spec of specs) {
    const dims = spec.dims.map(dimOf);
    const n = dims.reduce((a, b) => a * b, 1);
    const v = values.get(spec.name);
    const data = v === undefined ? new Float32Array(n).fill(spec.identity) : typeof v === 'number' ? new Float32Array(n).fill(v) : Float32Array.from(v);
    feeds[spec.name] = spec.dtype === 'bool' ? new ort.Tensor('bool', Uint8Array.from(data), [1, ...dims]) : new ort.Tensor('float32', data, [1, ...dims]);
  }
  return feeds;
}
