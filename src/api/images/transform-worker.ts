/**
 * The body of an image-transform worker thread (piscina task): pad → resize → crop → normalise on an
 * already decoded RGB image, off the HTTP event loop. The pixels come back transferred, not copied.
 */
import { Piscina } from 'piscina';
import type { ImagePreprocessing } from '../../../models/checkpoint/image-processor-config.js';
import type { RgbImage } from './pil-resize.js';
import { preprocessRgb } from './preprocess.js';

export interface TransformTask {
  image: RgbImage;
  preprocessing: ImagePreprocessing;
}

export default function transform({ image, preprocessing }: TransformTask): unknown {
  const { pixels } = preprocessRgb(image, preprocessing);
  return Piscina.move(pixels);
}
