/**
 * The error handler after a response has started: a streamed reply whose socket fails (a client
 * that went away mid-stream) already answered and counted its outcome, so the handler must neither
 * count a second, internal failure nor try to send a JSON body on an SSE response.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { errorsPlugin } from '../../plugins/errors.js';
import { ServerMetrics } from '../../src/observability/metrics.js';
import { metricValue } from '../helpers/metrics-text.js';

describe('errors plugin', () => {
  it('leaves a response that already sent its headers alone, and counts nothing', async () => {
    const metrics = new ServerMetrics('m', () => ({ running: 0, waiting: 0, slotsInUse: 0, maxSlots: 1, capacity: 0 }));
    const app = Fastify({ logger: false });
    await app.register(errorsPlugin, { metrics, bodyLimitBytes: 1024 });
    app.post('/stream', { config: { generation: true } }, async (_request, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
      reply.raw.write('data: {"partial":true}\n\n');
      // What Fastify reports when the socket under a piped stream closes early.
      throw Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    });
    app.post('/plain', { config: { generation: true } }, async () => {
      throw new Error('boom');
    });
    try {
      const streamed = await app.inject({ method: 'POST', url: '/stream', payload: {} });
      assert.equal(streamed.statusCode, 200);
      assert.equal(streamed.body, 'data: {"partial":true}\n\n');
      let text = await metrics.registry.metrics();
      assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'internal' }) ?? 0, 0);

      // Control: before headers, an unexpected error is still a counted 500 with the error shape.
      const plain = await app.inject({ method: 'POST', url: '/plain', payload: {} });
      assert.equal(plain.statusCode, 500);
      assert.equal((plain.json() as { error: { message: string } }).error.message, 'internal server error');
      text = await metrics.registry.metrics();
      assert.equal(metricValue(text, 'attune:request_failure_total', { reason: 'internal' }), 1);
    } finally {
      await app.close();
    }
  });
});
