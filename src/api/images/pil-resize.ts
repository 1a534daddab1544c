/**
 * Pillow's `Image.resize` for 8-bit RGB (libImaging/Resample.c), which transformers'
 * CLIPImageProcessor calls: a separable convolution whose kernel is widened by the scale when
 * shrinking (so it antialiases), horizontal pass first, coefficients normalised per output pixel and
 * rounded to 22-bit fixed point, each pass rounded and clipped to 8 bits. Ported rather than taken
 * from sharp/libvips because the tower must see the pixels transformers gives it: libvips' reducers
 * round and place their kernels differently, and a one-level change on some pixels is a different
 * input. test/images/pil-resize.test.ts compares against Pillow's own output.
 */
import type { ResampleFilter } from '../../../models/checkpoint/image-processor-config.js';

/** Interleaved 8-bit RGB, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

interface Filter {
  support: number;
  at(x: number): number;
}

const FILTERS: Record<ResampleFilter, Filter> = {
  bilinear: {
    support: 1,
    at(x) {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  // Keys' cubic with a = −0.5, as Pillow writes it.
  bicubic: {
    support: 2,
    at(x) {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  /** Taps per output pixel (the buffer's stride). */
  ksize: number;
  /** Per output pixel: first input index and tap count. */
  bounds: Int32Array;
  /** Fixed-point weights, `ksize` per output pixel. */
  weights: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc, in the same float64 arithmetic order. */
function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.at((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

/** Pillow's clip8: the accumulator's integer part, clamped to 0..255. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

const HALF = 1 << (PRECISION_BITS - 1);

/** Resizes to exactly `width` × `height`; the input is never modified. */
export function resizeRgb(src: RgbImage, width: number, height: number, filterName: ResampleFilter): RgbImage {
  if (width === src.width && height === src.height) return { width, height, data: src.data.slice() };
  const filter = FILTERS[filterName];
  const vert = coefficients(src.height, height, filter);
  let img = src;
  let rowOffset = 0;
  if (width !== src.width) {
    // Only the source rows the vertical pass reads are resampled horizontally (Pillow does the same).
    const first = vert.bounds[0]!;
    const last = vert.bounds[(height - 1) * 2]! + vert.bounds[(height - 1) * 2 + 1]!;
    img = horizontal(src, width, first, last - first, coefficients(src.width, width, filter));
    rowOffset = first;
  }
  return height !== src.height ? vertical(img, height, rowOffset, vert) : img;
}

function horizontal(src: RgbImage, width: number, firstRow: number, rows: number, c: Coefficients): RgbImage {
  const out = new Uint8Array(width * rows * 3);
  const data = src.data, bounds = c.bounds, weights = c.weights, ksize = c.ksize;
  const inRow = src.width * 3;
  for (let y = 0; y < rows; y++) {
    const base = (y + firstRow) * inRow;
    let o = y * width * 3;
    for (let xx = 0; xx < width; xx++) {
      const n = bounds[xx * 2 + 1]!;
      const k = xx * ksize;
      let p = base + bounds[xx * 2]! * 3;
      let r = HALF, g = HALF, b = HALF;
      for (let x = 0; x < n; x++, p += 3) {
        const w = weights[k + x]!;
        // Int32 arithmetic throughout (Pillow's sums never leave int32), which V8 keeps unboxed.
        r = (r + Math.imul(data[p]!, w)) | 0;
        g = (g + Math.imul(data[p + 1]!, w)) | 0;
        b = (b + Math.imul(data[p + 2]!, w)) | 0;
      }
      out[o++] = clip8(r);
      out[o++] = clip8(g);
      out[o++] = clip8(b);
    }
  }
  return { width, height: rows, data: out };
}

/**
 * `rowOffset`: the source row that `img`'s row 0 is (when the horizontal pass kept only some rows).
 * Accumulates whole rows, so memory is read in order; the sums are the same integers as Pillow's.
 */
function vertical(img: RgbImage, height: number, rowOffset: number, c: Coefficients): RgbImage {
  const stride = img.width * 3;
  const out = new Uint8Array(stride * height);
  const data = img.data;
  const acc = new Int32Array(stride);
  for (let yy = 0; yy < height; yy++) {
    const ymin = c.bounds[yy * 2]! - rowOffset;
    const n = c.bounds[yy * 2 + 1]!;
    const k = yy * c.ksize;
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const w = c.weights[k + y]!;
      const row = (ymin + y) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i]! + Math.imul(data[row + i]!, w)) | 0;
    }
    const o = yy * stride;
    for (let i = 0; i < stride; i++) out[o + i] = clip8(acc[i]!);
  }
  return { width: img.width, height, data: out };
}
