/**
 * GET /metrics in the Prometheus text format. The metric definitions live in
 * src/observability/metrics.ts; this plugin only exposes them, open without a key when configured.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ServerMetrics } from '../src/observability/metrics.js';

export interface MetricsPluginOptions {
  metrics: ServerMetrics;
  public: boolean;
}

export const metricsPlugin: FastifyPluginAsync<MetricsPluginOptions> = async (app, opts) => {
  app.get('/metrics', { config: { public: opts.public }, schema: { summary: 'Prometheus metrics (vLLM\'s stems under attune:)', tags: ['operations'] } }, async (_request, reply) => {
    reply.header('content-type', opts.metrics.contentType);
    return opts.metrics.render();
  });
};
