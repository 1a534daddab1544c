/**
 * An onnxruntime session for a compiled vision graph: one call encodes a batch of preprocessed images
 * and hands back, per image, its projected features and its taps, as views into the batch outputs
 * (no copies). Same provider fallback as the decoder's sessions; only the engine worker runs it.
 */
import ort from 'onnxruntime-node';
import { VISION_IO, type CompiledVision } from '../../models/compiler/vision-graph.js';
import { createOrtSession, type SessionOptions } from './ort-session.js';

export interface TapValue {
  data: Float32Array;
  /** Per-image dims (the image axis excluded). */
  dims: number[];
}

export interface EncodedImage {
  /** `[tokensPerImage, lmDim]` row-major: the rows that replace the image's tokens in the prompt. */
  features: Float32Array;
  /** owner → tap name → value. */
  taps: Record<string, Record<string, TapValue>>;
}

/** A vision graph to open: its model bytes (weights inline), or a model file over a weight store. */
export type LoadableVision = Omit<CompiledVision, 'bytes'> & ({ bytes: Uint8Array } | { path: string });

export class VisionSession {
  /** Floats in one preprocessed image, `C·H·W`. */
  readonly pixelsPerImage: number;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly graph: Omit<CompiledVision, 'bytes'>,
    readonly provider: string,
  ) {
    const c = graph.config;
    this.pixelsPerImage = c.nChannels * c.imageSize * c.imageSize;
  }

  static async create(graph: LoadableVision, opts: SessionOptions = {}): Promise<VisionSession> {
    const { session, provider } = await createOrtSession('path' in graph ? graph.path : graph.bytes, opts);
    // The session keeps the graph's description, not its bytes.
    const { bytes: _bytes, path: _path, ...info } = graph as LoadableVision & { bytes?: Uint8Array; path?: string };
    return new VisionSession(session, info, provider);
  }

  /** Encodes `images` (each `[C, H, W]`, as preprocessing produces it) in one batch, results in order. */
  async run(images: readonly Float32Array[]): Promise<EncodedImage[]> {
    if (images.length === 0) return [];
    const per = this.pixelsPerImage;
    const batch = new Float32Array(images.length * per);
    images.forEach((img, i) => {
      if (img.length !== per) throw new Error(`image ${i}: ${img.length} values, the vision graph takes ${per} (${this.shape().join('×')})`);
      batch.set(img, i * per);
    });
    const out = await this.session.run({ [VISION_IO.pixelValues]: new ort.Tensor('float32', batch, [images.length, ...this.shape()]) });
    const perImage = (name: string) => {
      const t = out[name];
      if (!t) throw new Error(`the vision graph returned no ${name}`);
      const data = t.data as Float32Array;
      const dims = t.dims.slice(1).map(Number);
      const size = dims.reduce((a, b) => a * b, 1);
      return (i: number): TapValue => ({ data: data.subarray(i * size, (i + 1) * size), dims });
    };
    const features = perImage(VISION_IO.imageFeatures);
    const taps = this.graph.taps.map((spec) => ({ spec, at: perImage(spec.output) }));
    return images.map((_, i) => {
      const byOwner: EncodedImage['taps'] = {};
      for (const { spec, at } of taps) (byOwner[spec.owner] ??= {})[spec.name] = at(i);
      return { features: features(i).data, taps: byOwner };
    });
  }

  private shape(): number[] {
    const c = this.graph.config;
    return [c.nChannels, c.imageSize, c.imageSize];
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
