/**
 * One error shape for every failure, whoever raised it: our ApiErrors, Fastify's own (body too
 * large, bad JSON, wrong content type), unknown routes, and unexpected exceptions. A client mistake
 * is always a 4xx; a 5xx never carries an internal message. Failures of generation routes are
 * counted here, once, in request_failure_total.
 */
import type { FastifyError } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../src/api/errors.js';
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

export const errorsPlugin = fp<ErrorsPluginOptions>(
  async (app, { metrics, bodyLimitBytes }) => {
    app.setErrorHandler((error, request, reply) => {
      // A stream that already sent its headers (SSE) has answered and counted its own outcome: an
      // error here is its socket going away (a client disconnect), not a second failure to report.
      if (reply.raw.headersSent) {
        request.log.debug({ err: error }, 'error after the response started');
        if (!reply.raw.writableEnded) reply.raw.end();
        return;
      }
      const api = toApiError(error, bodyLimitBytes);
      if (api.statusCode >= 500) request.log.error({ err: error }, 'request failed');
      else request.log.info({ status: api.statusCode, code: api.code, param: api.param }, api.message);
      if (request.routeOptions.config?.generation === true && api.failure) metrics.failed(api.failure);
      if (request.raw.socket?.destroyed) return reply.hijack(); // the client is gone: nobody to answer
      return reply.code(api.statusCode).headers(api.headers).send(api.toBody());
    });

    app.setNotFoundHandler((request, reply) => {
      const api = new ApiError(404, `no route ${request.method} ${request.url.split('?')[0]}`, { type: 'not_found_error', code: 'not_found', failure: null });
      return reply.code(404).send(api.toBody());
    });
  },
  { name: 'attune-errors' },
);
