/**
 * Every calibrator attune serves, in registry order: fragments at one hook compose in this order,
 * whatever order a client lists calibrators in. Adding one is adding its module here.
 */
import type { z } from 'zod';
import { loadProfile, profileSchema, type ModelProfile } from '../models/profiles/profile.js';
import type { AnyCalibrator } from './calibrator.js';
import { act } from './act.js';
import { varCalibrator } from './var.js';
import { vhr } from './vhr.js';
import { paint } from './paint.js';

export const CALIBRATORS: readonly AnyCalibrator[] = [
  act as AnyCalibrator,
  varCalibrator as AnyCalibrator,
  vhr as AnyCalibrator,
  paint as AnyCalibrator,
];

export function calibratorById(id: string): AnyCalibrator | undefined {
  return CALIBRATORS.find((c) => c.id === id);
}

/** A model profile's schema: a chat template and the section of every calibrator that reads one. */
export function modelProfileSchema(calibrators: readonly AnyCalibrator[] = CALIBRATORS): z.ZodType<ModelProfile> {
  return profileSchema(Object.fromEntries(calibrators.flatMap((c) => (c.profileSchema ? [[c.id, c.profileSchema]] : []))));
}

export const MODEL_PROFILE_SCHEMA = modelProfileSchema();

/** The model's profile (next to its weights, or built in), validated against every calibrator's section. */
export function loadModelProfile(modelName: string, modelDir: string | null): ModelProfile {
  return loadProfile(modelName, modelDir, MODEL_PROFILE_SCHEMA);
}
