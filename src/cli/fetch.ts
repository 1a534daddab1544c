/**
 * `attune fetch`: downloads a model's files into `<dest>/<name>/`, each checked against its pinned
 * sha256 before it gets its final name (hub.ts), and exits. It is what a Kubernetes init container
 * runs to fill an emptyDir that the server then reads with `--models-dir`, so the serving container
 * needs no egress and never starts on a corrupted file. A model is either one from the built-in
 * catalogue (`--model`) or described by a manifest file in the catalogue's own shape (`--manifest`).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { CATALOG, catalogFileName, downloadCatalogModel, type CatalogEntry } from '../../models/hub.js';

const HELP = `usage: attune fetch (--model NAME | --manifest FILE) --dest DIR [--hub-url URL]

Downloads a model into DIR/<name>/, verifying every file's sha256, and exits 0 when all are there.
Files already present under their final name are kept (only verified files get that name).

  --model NAME     a model of the built-in catalogue (${Object.keys(CATALOG).join(', ')})
  --manifest FILE  JSON {"name", "baseUrl", "files": [{"path", "sha256"}]}: each file is fetched from
                   baseUrl/path and stored as DIR/<name>/<last segment of path>
  --dest DIR       where the model folder goes (serve it with --models-dir DIR --model <name>)
  --hub-url URL    replaces the base URL, e.g. a mirror (default: ATTUNE_HUB_URL, else the entry's own)
`;

const ModelManifestSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a model name: letters, digits, ".", "_" and "-"'),
  baseUrl: z.url({ protocol: /^https?$/ }),
  files: z
    .array(
      z.strictObject({
        path: z.string().min(1).refine((p) => !p.split('/').includes('..'), 'must not contain ".."'),
        sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, '64 hex digits'),
      }),
    )
    .min(1),
});
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

class UsageError extends Error {}

export async function run(argv: string[]): Promise<number> {
  let entry: CatalogEntry;
  let dest: string;
  let hubUrl: string | undefined;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        manifest: { type: 'string' },
        dest: { type: 'string' },
        'hub-url': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (!values.dest) throw new UsageError('--dest is required');
    if ((values.model === undefined) === (values.manifest === undefined)) throw new UsageError('give exactly one of --model and --manifest');
    entry = values.model !== undefined ? catalogEntry(values.model) : readManifest(values.manifest!);
    dest = values.dest;
    hubUrl = values['hub-url'] ?? (process.env.ATTUNE_HUB_URL || undefined);
  } catch (e) {
    process.stderr.write(`attune fetch: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const dir = join(dest, entry.name);
  await downloadCatalogModel(entry, dir, presentFiles(dir, entry), { baseUrl: hubUrl });
  process.stdout.write(`${entry.name}: ${entry.files.length} file(s) verified in ${dir}\n`);
  return 0;
}

function catalogEntry(name: string): CatalogEntry {
  const entry = CATALOG[name];
  if (!entry) throw new UsageError(`model ${name} is not in the catalogue (${Object.keys(CATALOG).join(', ')}); describe it with --manifest`);
  return entry;
}

function readManifest(path: string): CatalogEntry {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`manifest ${path}: ${(e as Error).message}`);
  }
  const parsed = ModelManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new UsageError(`manifest ${path}: ${issues.join('; ')}`);
  }
  return parsed.data;
}

/** Final names are only ever given to verified files, so one that exists need not be fetched again. */
function presentFiles(dir: string, entry: CatalogEntry): Set<string> {
  const names = entry.files.map(catalogFileName);
  return new Set(names.filter((name) => existsSync(join(dir, name)) && statSync(join(dir, name)).isFile()));
}
