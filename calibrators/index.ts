/** Every calibrator attune serves. Adding one is adding its module here. */
import type { AnyCalibrator } from './calibrator.js';

export const CALIBRATORS: readonly AnyCalibrator[] = [];

export function calibratorById(id: string): AnyCalibrator | undefined {
  return CALIBRATORS.find((c) => c.id === id);
}
