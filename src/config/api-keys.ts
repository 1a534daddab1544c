/** API keys from a file: read once at startup, so a later edit of the file cannot half-apply. */
import { readFileSync } from 'node:fs';

export function parseApiKeyFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
}

export function readApiKeyFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the API key file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const keys = parseApiKeyFile(text);
  // An empty key file would silently turn auth off; that is never what its author meant.
  if (keys.length === 0) throw new Error(`the API key file ${path} holds no keys`);
  return keys;
}
