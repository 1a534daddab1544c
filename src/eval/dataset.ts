/**
 * Evaluation items, one JSON object per line: multiple-choice cloze items scored by accuracy, or
 * plain text scored by mean negative log-likelihood. A file holds one kind only, because the two
 * metrics cannot be pooled into one number. Multiple-choice items may carry an `image` (a path
 * relative to the file, or a data: URL) for vision-language models; then every item of the file
 * does, since image items are rendered through the chat template and text items are not.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';

export const McItemSchema = z
  .object({
    /** A path relative to the dataset file, or a data: URL. */
    image: z.string().min(1).optional(),
    prompt: z.string().min(1),
    choices: z.array(z.string().min(1)).min(2),
    answer: z.number().int().min(0),
  })
  .strict()
  .refine((item) => item.answer < item.choices.length, { message: 'answer must index one of the choices', path: ['answer'] });
export type McItem = z.infer<typeof McItemSchema>;

export const TextItemSchema = z.object({ text: z.string().min(1) }).strict();
export type TextItem = z.infer<typeof TextItemSchema>;

export type Dataset = { kind: 'mc'; items: McItem[] } | { kind: 'nll'; items: TextItem[] };

/** Image items (every item of the file has an image, or none does). */
export function hasImages(data: Dataset): boolean {
  return data.kind === 'mc' && data.items.some((i) => i.image !== undefined);
}

/** Bad input, reported with where it came from so the user can fix the file. */
export class DatasetError extends Error {}

/** Parses JSONL text; blank lines are skipped, and errors name the 1-based line number. */
export function parseDataset(text: string, source: string): Dataset {
  const mc: McItem[] = [];
  const plain: TextItem[] = [];
  let firstKind: { kind: 'mc' | 'nll'; line: number } | null = null;
  let firstImage: { image: boolean; line: number } | null = null;
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = i + 1;
    if (!raw.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new DatasetError(`${source}:${line}: not JSON (${(e as Error).message})`);
    }
    const kind = typeof value === 'object' && value !== null && 'text' in value ? 'nll' : 'mc';
    if (firstKind && firstKind.kind !== kind) {
      throw new DatasetError(`${source}:${line}: mixes ${kind === 'mc' ? 'multiple-choice' : 'plain-text'} items with the other kind (line ${firstKind.line}); use one kind per file`);
    }
    firstKind ??= { kind, line };
    const bad = (issues: readonly { path: PropertyKey[]; message: string }[], shape: string) =>
      new DatasetError(`${source}:${line}: not a ${shape} item (${issues.map((is) => (is.path.length ? `${is.path.map(String).join('.')}: ${is.message}` : is.message)).join('; ')})`);
    if (kind === 'nll') {
      const r = TextItemSchema.safeParse(value);
      if (!r.success) throw bad(r.error.issues, '{text}');
      plain.push(r.data);
    } else {
      const r = McItemSchema.safeParse(value);
      if (!r.success) throw bad(r.error.issues, '{prompt, choices, answer}');
      const image = r.data.image !== undefined;
      if (firstImage && firstImage.image !== image) {
        throw new DatasetError(`${source}:${line}: ${image ? 'has' : 'lacks'} an image while line ${firstImage.line} ${image ? 'lacks' : 'has'} one; use one kind per file`);
      }
      firstImage ??= { image, line };
      mc.push(r.data);
    }
  }
  if (!firstKind) throw new DatasetError(`${source}: no items`);
  return firstKind.kind === 'mc' ? { kind: 'mc', items: mc } : { kind: 'nll', items: plain };
}

export async function loadDataset(path: string): Promise<Dataset> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DatasetError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return parseDataset(text, path);
}

