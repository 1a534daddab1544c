/**
 * Hook points of the vision tower. They are read only: a fragment there can only declare taps
 * (graph outputs delivered to its owner per image, never fed back), since an image's features are
 * shared by every request that sends it.
 */
import type { Dim, GraphBuilder, Value } from '../onnx/graph-builder.js';

export const VISION_HOOK_KINDS = ['hook_resid_pre', 'attn.hook_pattern'] as const;
export type VisionHookKind = (typeof VISION_HOOK_KINDS)[number];
export const visionHookName = (layer: number, kind: VisionHookKind): string => `vision.blocks.${layer}.${kind}`;

export interface VisionTapContext {
  g: GraphBuilder;
  layer: number;
  hook: string;
  owner: string;
  /** Declares a graph output `tap.<owner>.<name>` with dims [images, ...dims]; delivered to its owner per image, never fed back. */
  tap(name: string, value: Value, dims: Dim[]): void;
}

export interface VisionTapFragment {
  owner: string;
  hook: VisionHookKind;
  layers?: (layer: number) => boolean;
  tap(x: Value, ctx: VisionTapContext): void;
}
