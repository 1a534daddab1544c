/**
 * `preprocessor_config.json` of a CLIP-preprocessed model (transformers' `CLIPImageProcessor`, or
 * `LlavaImageProcessor`, which adds `do_pad`) → the steps src/api/images/preprocess.ts runs, with
 * transformers' defaults for omitted fields and its size conventions (an int `size` is the shortest
 * edge, an int `crop_size` a square).
 */
import { z } from 'zod';

/** PIL's filter numbers as transformers stores them (`resample`); only these two are implemented. */
export const RESAMPLE_FILTERS = { 2: 'bilinear', 3: 'bicubic' } as const;
export type ResampleFilter = (typeof RESAMPLE_FILTERS)[keyof typeof RESAMPLE_FILTERS];
const PIL_FILTER_NAMES: Record<number, string> = { 0: 'nearest', 1: 'lanczos', 4: 'box', 5: 'hamming' };

export interface Size2d {
  height: number;
  width: number;
}

export interface ImagePreprocessing {
  /** Pad to a square of `padColor` before anything else (LLaVA-1.5's expand2square). */
  padToSquare: boolean;
  /** int(mean · 255) per channel, as LLaVA and transformers' LlavaImageProcessor compute it (truncated, not rounded). */
  padColor: readonly [number, number, number];
  /** null: no resize. */
  resize: { shortestEdge: number } | Size2d | null;
  resample: ResampleFilter;
  /** null: no crop. */
  centerCrop: Size2d | null;
  /** null: no rescale. */
  rescaleFactor: number | null;
  /** null: no normalisation. */
  normalize: { mean: readonly [number, number, number]; std: readonly [number, number, number] } | null;
}

const SUPPORTED_TYPES = ['CLIPImageProcessor', 'CLIPImageProcessorFast', 'LlavaImageProcessor', 'LlavaImageProcessorFast'];
/** transformers' OPENAI_CLIP_MEAN and OPENAI_CLIP_STD. */
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

const positiveInt = z.number().int().positive();
const triple = z.tuple([z.number(), z.number(), z.number()]);

const ProcessorSchema = z.object({
  image_processor_type: z.string().optional(),
  do_resize: z.boolean().default(true),
  size: z
    .union([positiveInt, z.object({ shortest_edge: positiveInt }), z.object({ height: positiveInt, width: positiveInt })])
    .default({ shortest_edge: 224 }),
  resample: z.number().int().default(3),
  do_center_crop: z.boolean().default(true),
  crop_size: z.union([positiveInt, z.object({ height: positiveInt, width: positiveInt })]).default({ height: 224, width: 224 }),
  do_rescale: z.boolean().default(true),
  rescale_factor: z.number().positive().default(1 / 255),
  do_normalize: z.boolean().default(true),
  image_mean: z.union([z.number(), triple]).default([...CLIP_MEAN]),
  image_std: z.union([z.number().positive(), z.tuple([z.number().positive(), z.number().positive(), z.number().positive()])]).default([...CLIP_STD]),
  do_pad: z.boolean().default(false),
});

/**
 * `padToSquare` comes from config.json (`image_aspect_ratio: "pad"`, the original LLaVA-1.5 option);
 * a LlavaImageProcessor's `do_pad` turns it on too.
 */
export function parseImageProcessorConfig(json: unknown, source = 'preprocessor_config.json', opts: { padToSquare?: boolean } = {}): ImagePreprocessing {
  const parsed = ProcessorSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${source}: ${z.prettifyError(parsed.error)}`);
  const p = parsed.data;
  const type = p.image_processor_type;
  if (type !== undefined && !SUPPORTED_TYPES.includes(type)) {
    throw new Error(`${source}: image_processor_type ${type} is not supported (${SUPPORTED_TYPES.join(', ')} are)`);
  }
  const resample = RESAMPLE_FILTERS[p.resample as keyof typeof RESAMPLE_FILTERS];
  if (!resample) {
    throw new Error(`${source}: resample ${p.resample} (${PIL_FILTER_NAMES[p.resample] ?? 'unknown'}) is not supported (2 bilinear, 3 bicubic are)`);
  }
  const asTriple = (v: number | readonly [number, number, number]): [number, number, number] => (typeof v === 'number' ? [v, v, v] : [...v]);
  const mean = asTriple(p.image_mean);
  const std = asTriple(p.image_std);
  const size = typeof p.size === 'number' ? { shortestEdge: p.size } : 'shortest_edge' in p.size ? { shortestEdge: p.size.shortest_edge } : p.size;
  const crop = typeof p.crop_size === 'number' ? { height: p.crop_size, width: p.crop_size } : p.crop_size;
  return {
    padToSquare: (opts.padToSquare ?? false) || p.do_pad,
    padColor: mean.map((m) => Math.trunc(m * 255)) as [number, number, number],
    resize: p.do_resize ? size : null,
    resample,
    centerCrop: p.do_center_crop ? crop : null,
    rescaleFactor: p.do_rescale ? p.rescale_factor : null,
    normalize: p.do_normalize ? { mean, std } : null,
  };
}

/** The size every image comes out at, or null when it depends on the input (no crop, no fixed resize). */
export function preprocessedSize(p: ImagePreprocessing): Size2d | null {
  if (p.centerCrop) return p.centerCrop;
  if (p.resize && 'height' in p.resize) return p.resize;
  return null;
}
