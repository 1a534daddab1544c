/**
 * Bearer API keys on every route except those marked public (/health, /ready, and /metrics when
 * configured), including unknown paths, so the set of routes does not leak either.
 *
 * Keys are compared as SHA-256 digests with crypto.timingSafeEqual, against every configured key
 * without an early exit: neither a key's length nor which key matched shows in the timing. Keys and
 * the Authorization header are never logged (the logger redacts the header as well).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import { ApiError } from '../src/api/errors.js';

export interface AuthPluginOptions {
  keys: readonly string[];
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

export const authPlugin = fp<AuthPluginOptions>(
  async (app, { keys }) => {
    if (keys.length === 0) return;
    const digests = keys.map(digest);
    const accepted = (token: string): boolean => {
      const d = digest(token);
      let ok = false;
      for (const k of digests) ok = timingSafeEqual(d, k) || ok;
      return ok;
    };
    app.addHook('onRequest', async (request, reply) => {
      if (request.routeOptions.config?.public === true) return;
      const token = bearerToken(request.headers.authorization);
      if (token !== null && accepted(token)) return;
      reply.header('www-authenticate', 'Bearer');
      throw new ApiError(401, token === null ? 'missing API key: send it as "Authorization: Bearer <key>"' : 'invalid API key', {
        code: 'invalid_api_key',
        failure: null,
      });
    });
  },
  { name: 'attune-auth' },
);
