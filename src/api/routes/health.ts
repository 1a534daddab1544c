/**
 * GET /health is liveness: the process answers. GET /ready is readiness (see readiness.ts): load
 * balancers and Kubernetes route traffic by it. Both are open without an API key.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { RouteOptions } from '../context.js';
import { unavailable } from '../errors.js';

export const healthRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  app.get('/health', { config: { public: true, probe: true } }, async () => ({ status: 'ok' }));

  app.get('/ready', { config: { public: true, probe: true } }, async () => {
    const state = await ctx.readiness.check();
    if (state.ready) return { status: 'ready' };
    throw unavailable(state.message, ctx.config.queue.retryAfterSeconds);
  });
};
