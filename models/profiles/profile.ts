/**
 * Model profiles: what calibrators and the chat endpoint need to know about one model that its
 * checkpoint does not say (ACT head sets from a head search, VAR sink dimensions, a chat template for
 * llama2.c models). A profile is `models/profiles/<model>.json`, or `attune-profile.json` next to the
 * weights. Which sections exist is the calibrator registry's business (calibrators/index.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** `{ "<layer>": [query heads] }`, 0-based. */
// Canonical integers only, so "2" and "02" cannot both name layer 2.
export const HeadSetSchema = z.record(z.string().regex(/^(0|[1-9]\d*)$/, 'layer keys are 0-based integers without leading zeros'), z.array(z.number().int().min(0)));
export type HeadSet = z.infer<typeof HeadSetSchema>;

/**
 * A model profile: what calibrators and the chat endpoint need to know about one model. It has a
 * chat template and one section per calibrator that reads one, keyed by calibrator id and
 * validated by that calibrator's `profileSchema`; a section nobody reads is an error, never dropped.
 */
export interface ModelProfile {
  chat_template?: string;
  readonly [section: string]: unknown;
}

/** The schema of a profile with these calibrator sections. */
export function profileSchema(sections: Readonly<Record<string, z.ZodType>>): z.ZodType<ModelProfile> {
  const shape: Record<string, z.ZodType> = { chat_template: z.string().optional() };
  for (const [id, schema] of Object.entries(sections)) shape[id] = schema.optional();
  return z.object(shape).strict() as unknown as z.ZodType<ModelProfile>;
}

export const PROFILE_FILE_NAME = 'attune-profile.json';
const builtinDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'profiles');

export function parseProfile(text: string, source: string, schema: z.ZodType<ModelProfile>): ModelProfile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`profile ${source}: not JSON (${(e as Error).message})`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    // A bad record key's reason sits one level down ("Invalid key in record" alone says nothing).
    const describe = (i: z.core.$ZodIssue) =>
      i.code === 'invalid_key' ? (i.issues[0]?.message ?? i.message)
        : i.code === 'unrecognized_keys' ? `unknown section(s) ${i.keys.join(', ')}: no calibrator reads them` : i.message;
    throw new Error(`profile ${source}: ${r.error.issues.map((i) => `${i.path.join('.')}${i.path.length ? ': ' : ''}${describe(i)}`).join('; ')}`);
  }
  return r.data;
}

/**
 * A profile next to the weights (`attune-profile.json`, or `profiles/<name>.json` in a profile
 * directory beside them) wins over the built-in one; no profile is an empty profile.
 */
export function loadProfile(modelName: string, modelDir: string | null, schema: z.ZodType<ModelProfile>): ModelProfile {
  const candidates = [
    ...(modelDir ? [join(modelDir, PROFILE_FILE_NAME), join(modelDir, 'profiles', `${modelName}.json`)] : []),
    join(builtinDir, `${modelName}.json`),
  ];
  for (const path of candidates) if (existsSync(path)) return parseProfile(readFileSync(path, 'utf8'), path, schema);
  return {};
}
