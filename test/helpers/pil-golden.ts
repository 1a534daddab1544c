/**
 * Pillow's and numpy's own outputs for synthetic images (test/fixtures/pil-resize/golden.json, made by
 * generate.py beside it), and the synthetic source pixels they were made from.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage } from '../../src/api/images/pil-resize.js';
import { repoRoot } from './models-dir.js';

export interface PilGolden {
  pillow: string;
  shortest_edge: number;
  resize: { width: number; height: number; filter: 'bicubic' | 'bilinear'; out_width: number; out_height: number; rgb: string }[];
  /** Case 0 (45x37) after CLIPImageProcessor's crop 32, rescale 1/255 and CLIP normalisation, [3,32,32] f32 LE. */
  pixel_values_case0: string;
}

export const pilGolden = JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'pil-resize', 'golden.json'), 'utf8')) as PilGolden;

/** generate.py's source(): deterministic pixels with sharp steps, so negative lobes and clipping matter. */
export function syntheticRgb(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = (x * 37 + y * 91 + c * 53 + ((x * y) % 17) * 11) % 256;
    }
  }
  return { width, height, data };
}

export function goldenPixelValues(): Float32Array {
  const b = Buffer.from(pilGolden.pixel_values_case0, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
