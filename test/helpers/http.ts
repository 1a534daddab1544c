/** Small wrappers over global fetch (undici) for JSON requests and OpenAI error bodies. */
import assert from 'node:assert/strict';
import type { ErrorBody } from './openai-types.js';

export interface JsonResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

export async function postJson<T = unknown>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

export async function getJson<T = unknown>(url: string, headers: Record<string, string> = {}): Promise<JsonResponse<T>> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text.startsWith('{') ? JSON.parse(text) : text) as T };
}

/** Asserts the OpenAI error shape and returns its `error` object. */
export function assertErrorShape(body: unknown): ErrorBody['error'] {
  assert.equal(typeof body, 'object');
  const e = (body as { error?: Record<string, unknown> }).error;
  assert.ok(e, `expected an error body, got ${JSON.stringify(body)}`);
  assert.equal(typeof e.message, 'string');
  assert.equal(typeof e.type, 'string');
  assert.ok(e.param === null || typeof e.param === 'string');
  assert.ok('code' in e);
  return e as ErrorBody['error'];
}
