/**
 * application/json bodies are parsed by parseJsonText (src/api/json-body.ts), the same path that
 * reads JSON carried in string fields, so a forbidden key gets the same 400 with its path wherever
 * it appears. Replaces Fastify's default JSON parser.
 */
import fp from 'fastify-plugin';
import { parseJsonText } from '../src/api/json-body.js';

export const jsonBodyPlugin = fp(
  async (app) => {
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseJsonText(body as string, null));
      } catch (e) {
        done(e as Error, undefined);
      }
    });
  },
  { name: 'attune-json-body' },
);
