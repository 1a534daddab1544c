/**
 * GET /health is liveness: the process answers. GET /ready is readiness (see readiness.ts): load
 * balancers and Kubernetes route traffic by it. Both are open without an API key.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { RouteOptions } from '../context.js';
import { unavailable } from '../errors.js';

export const healthRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const alive = async () => ({ status: 'ok' });
  app.get('/health', { config: { public: true, probe: true }, schema: { summary: 'Liveness: the process answers', tags: ['operations'] } }, alive);
  // vLLM's (and SageMaker's) liveness path, GET and POST.
  app.route({ method: ['GET', 'POST'], url: '/ping', config: { public: true, probe: true }, schema: { summary: 'Liveness, as vLLM and SageMaker ask for it', tags: ['operations'] }, handler: alive });

  app.get('/ready', { config: { public: true, probe: true }, schema: { summary: 'Readiness: model loaded, worker up, a recent forward passed, not draining', tags: ['operations'] } }, async () => {
    const state = await ctx.readiness.check();
    if (state.ready) return { status: 'ready' };
    throw unavailable(state.message, ctx.config.queue.retryAfterSeconds);
  });
};
