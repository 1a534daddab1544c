/**
 * Errors Node's HTTP parser raises before Fastify sees a request (malformed HTTP, headers too large,
 * headers that never completed): answered in the OpenAI error shape, then the connection is closed.
 * Fastify's default writes its own shape.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { ApiError } from '../errors.js';
import type { ConnectionCloseReason } from './connection-guard.js';

function describe(err: NodeJS.ErrnoException): { error: ApiError; reason: ConnectionCloseReason } {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return {
      error: new ApiError(408, 'the request headers did not arrive in time (idle_timeout)', { type: 'timeout_error', code: 'headers_timeout' }),
      reason: 'headers_timeout',
    };
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return { error: new ApiError(431, 'the request headers are too large', { code: 'headers_too_large' }), reason: 'bad_request' };
  }
  return { error: new ApiError(400, `malformed HTTP request (${err.code ?? 'parse error'})`, { code: 'bad_http_request' }), reason: 'bad_request' };
}

/** Fastify's `clientErrorHandler`: `onClosed` counts the closed connection. */
export function clientErrorHandler(onClosed: (reason: ConnectionCloseReason) => void) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    // A reset or an already-closed socket has nobody to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const { error, reason } = describe(err);
    onClosed(reason);
    if (socket.writable) {
      const body = JSON.stringify(error.toBody());
      socket.write(
        `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}
