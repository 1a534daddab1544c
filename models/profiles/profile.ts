/**
 * Model profiles: what calibrators and the chat endpoint need to know about one model that its
 * checkpoint does not say (ACT head sets from a head search, a chat template for llama2.c models).
 * A profile is `models/profiles/<model>.json`, or `attune-profile.json` next to the weights.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** `{ "<layer>": [query heads] }`, 0-based. */
// Canonical integers only, so "2" and "02" cannot both name layer 2.
export const HeadSetSchema = z.record(z.string().regex(/^(0|[1-9]\d*)$/, 'layer keys are 0-based integers without leading zeros'), z.array(z.number().int().min(0)));
export type HeadSet = z.infer<typeof HeadSetSchema>;

export const ModelProfileSchema = z.object({
  act: z
    .object({
      heads: HeadSetSchema,
      /** Layers that get ACT fragments; default 2..L-1, as the official code never calibrates 0 and 1. */
      layers: z.array(z.number().int().min(0)).optional(),
      beta: z.number().min(0).max(1).optional(),
      threshold: z.number().gt(0).max(1).optional(),
      /** How the head set was made, for humans. */
      source: z.string().optional(),
    })
    .optional(),
  chat_template: z.string().optional(),
});
export type ModelProfile = z.infer<typeof ModelProfileSchema>;

export const PROFILE_FILE_NAME = 'attune-profile.json';
const builtinDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'profiles');

export function parseProfile(text: string, source: string): ModelProfile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`profile ${source}: not JSON (${(e as Error).message})`);
  }
  const r = ModelProfileSchema.safeParse(raw);
  if (!r.success) {
    // A bad record key's reason sits one level down ("Invalid key in record" alone says nothing).
    const describe = (i: z.core.$ZodIssue) => (i.code === 'invalid_key' ? (i.issues[0]?.message ?? i.message) : i.message);
    throw new Error(`profile ${source}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${describe(i)}`).join('; ')}`);
  }
  return r.data;
}

/**
 * A profile next to the weights (`attune-profile.json`, or `profiles/<name>.json` in a profile
 * directory beside them) wins over the built-in one; no profile is an empty profile.
 */
export function loadProfile(modelName: string, modelDir: string | null): ModelProfile {
  const candidates = [
    ...(modelDir ? [join(modelDir, PROFILE_FILE_NAME), join(modelDir, 'profiles', `${modelName}.json`)] : []),
    join(builtinDir, `${modelName}.json`),
  ];
  for (const path of candidates) if (existsSync(path)) return parseProfile(readFileSync(path, 'utf8'), path);
  return {};
}
