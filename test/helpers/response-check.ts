/**
 * Non-throwing checks of server responses, for runs of thousands of requests where every problem
 * should be tallied and reported at the end rather than stopping at the first.
 */
import type { RawResponse } from './raw-http.js';

/** Why `body` is not OpenAI's error shape `{error: {message, type, param, code}}`, or null when it is. */
export function errorShapeProblem(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body is not a JSON object';
  const e = (body as { error?: unknown }).error;
  if (typeof e !== 'object' || e === null) return 'no "error" object';
  const { message, type, param, code } = e as Record<string, unknown>;
  if (typeof message !== 'string' || message.trim() === '') return 'error.message is missing or empty';
  if (typeof type !== 'string' || type === '') return 'error.type is missing';
  if (!(param === null || typeof param === 'string')) return 'error.param is neither a string nor null';
  if (!('code' in (e as object))) return 'error.code is missing';
  if (!(code === null || typeof code === 'string' || typeof code === 'number')) return 'error.code has the wrong type';
  return null;
}

export interface SseSummary {
  /** JSON payloads in order ([DONE] excluded). */
  chunks: unknown[];
  done: boolean;
  /** The error event's `error` object, when the stream ended with one. */
  error: { message: string; type: string; param: string | null; code: string | number | null } | null;
  problems: string[];
}

/** Parses a complete SSE body as the server writes it (`data: ...` events, `:` comments). */
export function parseSseBody(text: string): SseSummary {
  const out: SseSummary = { chunks: [], done: false, error: null, problems: [] };
  for (const block of text.split('\n\n')) {
    if (block === '') continue;
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (data === '') continue;
    if (out.done || out.error) out.problems.push('an event follows [DONE] or an error event');
    if (data === '[DONE]') {
      out.done = true;
      continue;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      out.problems.push(`an event is not JSON: ${data.slice(0, 80)}`);
      continue;
    }
    if (typeof chunk === 'object' && chunk !== null && 'error' in chunk) {
      const shape = errorShapeProblem(chunk);
      if (shape) out.problems.push(`error event: ${shape}`);
      else out.error = (chunk as { error: SseSummary['error'] }).error;
      continue;
    }
    out.chunks.push(chunk);
  }
  if (!out.done && !out.error) out.problems.push('the stream ended with neither [DONE] nor an error event');
  return out;
}

export interface Classified {
  /** For tallies: the HTTP status, or `sse:<code>` for a stream that ended with an error event. */
  label: string;
  /** A server-side failure: a 5xx, or a stream that failed with a server error. */
  serverError: boolean;
  problems: string[];
}

/** Checks one response: 4xx bodies have the error shape, 2xx bodies parse, streams are well-formed. */
export function classifyResponse(res: RawResponse): Classified {
  const problems: string[] = [];
  const text = res.body.toString('utf8');
  const type = String(res.headers['content-type'] ?? '');
  if (res.status >= 500) {
    let detail = text.slice(0, 200);
    try {
      detail = JSON.stringify(JSON.parse(text));
    } catch {
      // keep the raw text
    }
    return { label: String(res.status), serverError: true, problems: [`status ${res.status}: ${detail}`] };
  }
  if (res.status >= 400) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { label: String(res.status), serverError: false, problems: [`status ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`] };
    }
    const shape = errorShapeProblem(body);
    if (shape) problems.push(`status ${res.status}: ${shape}: ${text.slice(0, 200)}`);
    if (res.status === 429 && !res.headers['retry-after']) problems.push('429 without Retry-After');
    return { label: String(res.status), serverError: false, problems };
  }
  if (res.status >= 200 && res.status < 300) {
    if (type.startsWith('text/event-stream')) {
      const sse = parseSseBody(text);
      problems.push(...sse.problems);
      if (sse.error) {
        const serverError = sse.error.type === 'server_error' || sse.error.code === 'engine_error';
        return { label: `sse:${sse.error.code}`, serverError, problems };
      }
      return { label: `${res.status}-sse`, serverError: false, problems };
    }
    if (type.startsWith('application/json')) {
      try {
        JSON.parse(text);
      } catch {
        problems.push(`status ${res.status} with a body that is not JSON`);
      }
    }
    return { label: String(res.status), serverError: false, problems };
  }
  return { label: String(res.status), serverError: false, problems: [`unexpected status ${res.status}`] };
}
