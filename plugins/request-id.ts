/**
 * Request ids: a client's `X-Request-Id` is honoured (so one id follows a request through proxies
 * and logs) when it is a plausible id, and echoed on every response; otherwise one is generated.
 * An id is written into every log line, so arbitrary client text is never accepted as one.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fp from 'fastify-plugin';

export const REQUEST_ID_HEADER = 'x-request-id';
const PLAUSIBLE_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/** Fastify's `genReqId`. */
export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && PLAUSIBLE_ID.test(given) ? given : randomUUID();
}

export const requestIdPlugin = fp(
  async (app) => {
    // onRequest, not onSend: streamed and early-failing replies carry it too.
    app.addHook('onRequest', async (request, reply) => {
      reply.header(REQUEST_ID_HEADER, request.id);
    });
  },
  { name: 'attune-request-id' },
);
