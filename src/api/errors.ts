/**
 * The one error shape every route answers with, OpenAI's: `{error: {message, type, param, code}}`,
 * where `param` is the dotted path of the offending field (`messages.0.content`,
 * `calibration.act.beta`) so a client can point at it without parsing the message.
 */
import type { FailureReason } from '../observability/metrics.js';

export type ErrorType =
  | 'invalid_request_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'timeout_error'
  | 'unavailable_error'
  | 'server_error';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | number | null };
}

export interface ApiErrorOptions {
  type?: ErrorType;
  param?: string | null;
  code?: string | null;
  headers?: Record<string, string>;
  /** How request_failure_total counts it when it ends a generation request; null: not counted. */
  failure?: FailureReason | null;
}

export class ApiError extends Error {
  override name = 'ApiError';
  readonly type: ErrorType;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;
  readonly failure: FailureReason | null;

  constructor(readonly statusCode: number, message: string, opts: ApiErrorOptions = {}) {
    super(message);
    this.type = opts.type ?? (statusCode >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.headers = opts.headers ?? {};
    this.failure = opts.failure === undefined ? (statusCode >= 500 ? 'internal' : 'validation') : opts.failure;
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Field paths as clients write them: `messages.0.content`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join('.');
}

export function badRequest(message: string, param: string | null = null, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, { param, code });
}

export function unsupported(param: string, message: string): ApiError {
  return new ApiError(400, message, { param, code: 'unsupported_parameter' });
}

export function overloaded(message: string, retryAfterSeconds: number): ApiError {
  return new ApiError(429, message, {
    type: 'rate_limit_error',
    code: 'overloaded',
    headers: { 'retry-after': String(retryAfterSeconds) },
    failure: 'overloaded',
  });
}

/**
 * A request that had started when a drain ran out of time. It was cut short, unlike one refused at
 * the door, so it counts as aborted; the client may retry on another replica.
 */
export function shutDownMidRequest(retryAfterSeconds: number): ApiError {
  return new ApiError(503, 'the server shut down before the request finished', {
    type: 'unavailable_error',
    code: 'unavailable',
    headers: { 'retry-after': String(retryAfterSeconds), connection: 'close' },
    failure: 'aborted',
  });
}

/** nginx's "client closed request": logged and counted, never seen by the client that left. */
export const CLIENT_CLOSED = 499;

/** The client went away (or stopped reading) before its generation finished; counted as aborted. */
export function clientGone(message = 'the client closed the connection; the generation was aborted'): ApiError {
  return new ApiError(CLIENT_CLOSED, message, { code: 'client_closed', failure: 'aborted' });
}

export function unavailable(message: string, retryAfterSeconds: number, extraHeaders: Record<string, string> = {}): ApiError {
  return new ApiError(503, message, {
    type: 'unavailable_error',
    code: 'unavailable',
    headers: { 'retry-after': String(retryAfterSeconds), ...extraHeaders },
    // Refused at the door, like a full queue: nothing ran.
    failure: 'overloaded',
  });
}
