/**
 * Hook points of the vision tower and the read-only taps calibrators attach to them.
 *
 * A tap never changes the tower: it reads a hook tensor (the original, whatever other taps read it
 * too), derives values from it inside the graph, and declares them as graph outputs that the engine
 * delivers to the tap's owner per image. Names follow the decoder's (TransformerLens), under `vision.`.
 */
import type { Dim, GraphBuilder, Value } from '../onnx/graph-builder.js';
import type { VisionConfig } from '../checkpoint/vision-weights.js';

export const VISION_HOOK_KINDS = ['hook_resid_pre', 'attn.hook_pattern'] as const;
export type VisionHookKind = (typeof VISION_HOOK_KINDS)[number];

/** `hook_resid_pre` is `[images, S, Dv]`, `attn.hook_pattern` `[images, heads, S, S]`; S = patches + 1, CLS first. */
export const visionHookName = (layer: number, kind: VisionHookKind) => `vision.blocks.${layer}.${kind}`;

/** The symbolic image axis every vision input, output and tap starts with. */
export const VISION_IMAGES_DIM = 'images';

export interface VisionTapContext {
  g: GraphBuilder;
  config: VisionConfig;
  layer: number;
  /** The full hook name, e.g. `vision.blocks.0.attn.hook_pattern`. */
  hook: string;
  owner: string;
  /** Declares a graph output `tap.<owner>.<name>` with dims [images, ...dims]; delivered to its owner per image, never fed back. */
  tap(name: string, value: Value, dims: Dim[]): void;
}

export interface VisionTapFragment {
  owner: string;
  hook: VisionHookKind;
  /**
   * The blocks to tap. Default: the blocks the features already compute (0..featureLayer−1). A
   * predicate that picks a later block makes the graph compute up to it (only through its attention
   * for `attn.hook_pattern`), so tapping never changes the features.
   */
  layers?: (layer: number, config: VisionConfig) => boolean;
  tap(x: Value, ctx: VisionTapContext): void;
}

/** One declared tap output, as the session reports it. */
export interface VisionTapSpec {
  owner: string;
  name: string;
  /** The graph output: `tap.<owner>.<name>`. */
  output: string;
  /** Per-image dims (the image axis excluded), as declared; symbolic dims are resolved at run time. */
  dims: Dim[];
  layer: number;
  hook: VisionHookKind;
}

export const tapOutputName = (owner: string, name: string) => `tap.${owner}.${name}`;
