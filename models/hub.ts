/**
 * The built-in model catalogue and its downloader. Files are streamed to a temporary name beside
 * their destination, hashed on the way, and renamed into place only when the sha256 pin matches: a
 * file with a model's final name is always a verified one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface CatalogFile {
  /** Path under the hub base URL; the file is stored under its last segment. */
  path: string;
  sha256: string;
}

export interface CatalogEntry {
  name: string;
  /** Default base URL; ATTUNE_HUB_URL replaces it. */
  baseUrl: string;
  files: CatalogFile[];
}

export const DEFAULT_MODEL = 'stories260K';

export const CATALOG: Readonly<Record<string, CatalogEntry>> = {
  stories260K: {
    name: 'stories260K',
    baseUrl: 'https://huggingface.co/karpathy/tinyllamas/resolve/main',
    files: [
      { path: 'stories260K/stories260K.bin', sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' },
      { path: 'stories260K/tok512.bin', sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312' },
    ],
  },
};

export function catalogFileName(f: CatalogFile): string {
  return f.path.slice(f.path.lastIndexOf('/') + 1);
}

/** The hub could not be reached at all: the message says how to run without it. */
export class HubUnreachableError extends Error {
  override name = 'HubUnreachableError';
}

export class ChecksumError extends Error {
  override name = 'ChecksumError';
}

export interface DownloadOptions {
  baseUrl?: string;
  fetch?: typeof fetch;
  /** Abort a download that takes longer than this in all (default 10 minutes). */
  timeoutMs?: number;
}

/** Downloads the entry's files that `dir` lacks (`present` names the ones it has). */
export async function downloadCatalogModel(
  entry: CatalogEntry,
  dir: string,
  present: ReadonlySet<string> = new Set(),
  opts: DownloadOptions = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const base = (opts.baseUrl ?? entry.baseUrl).replace(/\/+$/, '');
  for (const file of entry.files) {
    const name = catalogFileName(file);
    if (present.has(name)) continue;
    const url = `${base}/${file.path}`;
    try {
      await downloadVerified(url, join(dir, name), file.sha256, opts);
    } catch (e) {
      if (e instanceof HubUnreachableError) {
        const needed = entry.files.map((f) => `${entry.name}/${catalogFileName(f)}`).join(' and ');
        throw new HubUnreachableError(
          `cannot download model ${entry.name}: ${e.message}. If this machine is offline, set ATTUNE_MODELS_DIR ` +
            `to a directory containing ${needed}.`,
          { cause: e },
        );
      }
      throw e;
    }
  }
}

/** Streams `url` to `dest`, keeping it only if its sha256 is `sha256`. */
export async function downloadVerified(url: string, dest: string, sha256: string, opts: DownloadOptions = {}): Promise<void> {
  const doFetch = opts.fetch ?? fetch;
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 600_000);
  let res: Response;
  try {
    res = await doFetch(url, { redirect: 'follow', signal });
  } catch (e) {
    throw new HubUnreachableError(`${url} is unreachable (${causeText(e)})`, { cause: e });
  }
  if (!res.ok || !res.body) {
    throw new Error(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`.trimEnd());
  }
  const tmp = `${dest}.part-${process.pid}-${randomBytes(4).toString('hex')}`;
  const hash = createHash('sha256');
  const fh = await open(tmp, 'w');
  try {
    try {
      for await (const chunk of res.body) {
        hash.update(chunk);
        await fh.write(chunk);
      }
    } finally {
      await fh.close();
    }
    const got = hash.digest('hex');
    if (got !== sha256.toLowerCase()) {
      throw new ChecksumError(`download of ${url} has sha256 ${got}, expected ${sha256}; the file was discarded`);
    }
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

function causeText(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  return err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
}
