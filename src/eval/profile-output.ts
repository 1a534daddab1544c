/**
 * Writing a calibrator's section (a searched ACT head set, VAR's sink dims and τ) into a model
 * profile. Whatever the profile already says (a chat template, other calibrators' sections) is
 * kept; only that section is replaced, because its fields are only meaningful together (a head set
 * with the beta, threshold and layers it was searched with; sink dims with their τ).
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { HeadSet, ModelProfile } from '../../models/profiles/profile.js';
import { defaultActLayers, type ActProfile } from '../../calibrators/act.js';
import { MODEL_PROFILE_SCHEMA } from '../../calibrators/index.js';

export interface ActProfileEntry {
  heads: HeadSet;
  beta: number;
  threshold: number;
  nLayers: number;
  source: string;
}

/** `act` for a profile: the default layers 2..L−1 plus any layer the heads need. */
export function actProfileSection(e: ActProfileEntry): ActProfile {
  const layers = [...new Set([...defaultActLayers(e.nLayers), ...Object.keys(e.heads).map(Number)])].sort((a, b) => a - b);
  return { heads: e.heads, beta: e.beta, threshold: e.threshold, layers, source: e.source };
}

/** Merges `act` into a profile file (see writeProfileSection). */
export function writeActProfile(path: string, base: ModelProfile, section: ActProfile): Promise<Record<string, unknown>> {
  return writeProfileSection(path, base, 'act', section);
}

/**
 * Merges section `id` into the JSON at `path` when it exists (it must be a valid profile), else
 * into `base` (the model's current profile, so a new file next to the weights keeps its chat
 * template and other sections). Returns the object written.
 */
export async function writeProfileSection(path: string, base: ModelProfile, id: string, section: unknown): Promise<Record<string, unknown>> {
  let existing: Record<string, unknown> = { ...base };
  if (existsSync(path)) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path} exists but is not JSON (${(e as Error).message}); refusing to overwrite it`);
    }
    const check = MODEL_PROFILE_SCHEMA.safeParse(raw);
    if (!check.success || typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new Error(`${path} exists but is not a model profile; refusing to overwrite it`);
    }
    existing = raw as Record<string, unknown>;
  }
  const out = { ...existing, [id]: section };
  MODEL_PROFILE_SCHEMA.parse(out);
  await writeFile(path, `${prettyJson(out)}\n`);
  return out;
}

/**
 * Indented JSON with number arrays on one line, so a head set reads as `"2": [0, 6]`. Only arrays
 * the indenter broke over lines are joined: raw newlines never occur inside JSON strings, so
 * string contents cannot match.
 */
export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\n[\d\s,.eE+-]*\n\s*\]/g, (m) => `[${m.slice(1, -1).split(',').map((x) => x.trim()).join(', ')}]`);
}
