/**
 * One error shape for every failure, whoever raised it: our ApiErrors, Fastify's own (body too
 * large, bad JSON, wrong content type), unknown routes, and unexpected exceptions. A client mistake
 * is always a 4xx; a 5xx never carries an internal message. Failures of generation routes are
 * counted here, once, in request_failure_total.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../src/api/errors.js';
import { isStreamReply } from '../src/api/sse.js';
import type { ServerMetrics } from '../src/observability/metrics.js';

export interface ErrorsPluginOptions {
  metrics: ServerMetrics;
  bodyLimitBytes: number;
}

export function toApiError(error: unknown, bodyLimitBytes: number): ApiError {
  if (error instanceof ApiError) return error;
  const e = error as Partial<FastifyError>;
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, `the request body is larger than the limit of ${bodyLimitBytes} bytes (body_limit)`, { code: 'body_too_large' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported Content-Type; send application/json', { code: 'unsupported_media_type' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'the request body is empty; expected a JSON object', { code: 'invalid_json' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(400, `the request body is not valid JSON: ${e.message ?? ''}`, { code: 'invalid_json' });
  }
  if (status >= 400 && status < 500) {
    // secure-json-parse reports a syntax error or a __proto__ key as a plain 400.
    const json = error instanceof SyntaxError || /JSON|prototype|constructor/i.test(e.message ?? '');
    return new ApiError(status, json ? `the request body is not valid JSON: ${e.message}` : (e.message ?? 'bad request'), {
      code: json ? 'invalid_json' : typeof e.code === 'string' ? e.code.toLowerCase() : null,
    });
  }
  return new ApiError(500, 'internal server error', { failure: 'internal' });
}

/**
 * How loudly a failure is logged: an unexpected exception at error (with its stack); an engine failure
 * at error; a refusal the server chose (503 not ready, draining, overloaded) at warn; client mistakes
 * and clients that left at info. ApiErrors carry no useful stack.
 */
function logFailure(request: FastifyRequest, error: unknown, api: ApiError): void {
  if (!(error instanceof ApiError)) {
    if (api.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ status: api.statusCode, code: api.code }, api.message);
    return;
  }
  const fields = { status: api.statusCode, code: api.code, param: api.param };
  if (api.statusCode >= 500 && api.type === 'server_error') request.log.error(fields, api.message);
  else if (api.statusCode >= 500) request.log.warn(fields, api.message);
  else request.log.info(fields, api.message);
}

export const errorsPlugin = fp<ErrorsPluginOptions>(
  async (app, { metrics, bodyLimitBytes }) => {
    app.setErrorHandler((error, request, reply) => {
      // A stream (SSE) answers and counts its own outcome once it has handed Fastify its body: an
      // error here is its socket going away (the client left as the stream opened, "Premature close"),
      // not a second failure to report.
      if (reply.raw.headersSent || isStreamReply(reply.raw)) {
        request.log.debug({ err: error }, 'error after the response started');
        if (!reply.raw.writableEnded) reply.raw.end();
        return;
      }
      const api = toApiError(error, bodyLimitBytes);
      logFailure(request, error, api);
      if (request.routeOptions.config?.generation === true && api.failure) metrics.failed(api.failure);
      if (request.raw.socket?.destroyed) return reply.hijack(); // the client is gone: nobody to answer
      return reply.code(api.statusCode).headers(api.headers).send(api.toBody());
    });

    // Whatever answers an error without our shape (a plugin's plain-text 400, such as @fastify/cors's
    // refusal of a preflight without Access-Control-Request-Method) is put into it on the way out.
    app.addHook('onSend', async (request, reply, payload) => {
      if (reply.statusCode < 400 || typeof payload !== 'string' || /json/i.test(String(reply.getHeader('content-type') ?? ''))) return payload;
      const preflight = request.method === 'OPTIONS';
      const message = preflight
        ? `invalid CORS preflight request (${payload}): it needs Origin and Access-Control-Request-Method headers`
        : payload || (STATUS_CODES[reply.statusCode] ?? 'error');
      reply.type('application/json; charset=utf-8');
      return JSON.stringify(new ApiError(reply.statusCode, message, { code: preflight ? 'invalid_preflight' : null }).toBody());
    });

    app.setNotFoundHandler((request, reply) => {
      const api = new ApiError(404, `no route ${request.method} ${request.url.split('?')[0]}`, { type: 'not_found_error', code: 'not_found', failure: null });
      return reply.code(404).send(api.toBody());
    });
  },
  { name: 'attune-errors' },
);
