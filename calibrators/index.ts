/** Every calibrator attune serves. Adding one is adding its module here. */
import type { AnyCalibrator } from './calibrator.js';
import { act } from './act.js';

export const CALIBRATORS: readonly AnyCalibrator[] = [act as AnyCalibrator];

export function calibratorById(id: string): AnyCalibrator | undefined {
  return CALIBRATORS.find((c) => c.id === id);
}
