/**
 * CORS through @fastify/cors, off unless origins are configured (a server holding API keys should
 * not answer every web page's scripts by default). Registered before auth, so preflights, which
 * carry no credentials, are answered without a key.
 */
import cors from '@fastify/cors';
import fp from 'fastify-plugin';

export interface CorsPluginOptions {
  origins: readonly string[];
}

export const corsPlugin = fp<CorsPluginOptions>(
  async (app, { origins }) => {
    if (origins.length === 0) return;
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : [...origins],
      methods: ['GET', 'POST', 'OPTIONS'],
      allowedHeaders: ['authorization', 'content-type', 'x-request-id'],
      exposedHeaders: ['x-request-id', 'retry-after'],
      maxAge: 600,
    });
  },
  { name: 'attune-cors' },
);
