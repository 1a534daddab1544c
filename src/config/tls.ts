/**
 * The PEM files behind --ssl-certfile and --ssl-keyfile. Read and checked as a pair at startup, so a
 * missing file or a key that does not match its certificate is a configuration error with the flag's
 * name, not a stack trace from deep inside the HTTP server.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { ServerConfig } from './schema.js';

export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

/** The certificate and key to serve https with; null for plain http. */
export function readTlsFiles(tls: ServerConfig['tls']): TlsMaterial | null {
  if (tls.certFile === undefined || tls.keyFile === undefined) return null;
  const read = (path: string, flag: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new TlsConfigError(`cannot read --${flag} ${path}: ${(e as Error).message}`);
    }
  };
  const material = { cert: read(tls.certFile, 'ssl-certfile'), key: read(tls.keyFile, 'ssl-keyfile') };
  try {
    createSecureContext(material);
  } catch (e) {
    throw new TlsConfigError(`--ssl-certfile ${tls.certFile} and --ssl-keyfile ${tls.keyFile} do not make a usable pair: ${(e as Error).message}`);
  }
  return material;
}
