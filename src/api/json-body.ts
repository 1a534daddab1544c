/**
 * JSON text to a value, the one way every JSON input is read: request bodies and JSON carried in a
 * string field (`vllm_xargs.calibration`). Keys that would reach an object's prototype once the value
 * is merged into another object (`__proto__`, or `constructor` holding a `prototype`) are refused with
 * a 400 naming their path, as secure-json-parse (Fastify's default) refuses them, but with the path.
 * JSON.parse itself keeps such a key as a plain own property, so parsing first and looking after is
 * safe.
 */
import { ApiError, fieldPath } from './errors.js';

export function parseJsonText(text: string, param: string | null): unknown {
  const where = param ? `${param}: ` : 'the request body ';
  if (text.trim() === '') throw new ApiError(400, param ? `${param}: empty; expected JSON` : 'the request body is empty; expected a JSON object', { param, code: 'invalid_json' });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `${where}is not valid JSON: ${(e as Error).message}`, { param, code: 'invalid_json' });
  }
  // Cheap test first: almost no body mentions either word.
  if (text.includes('__proto__') || text.includes('constructor')) {
    const bad = forbiddenKeyPath(value);
    if (bad) {
      const path = fieldPath([...(param ? [param] : []), ...bad]);
      throw new ApiError(400, `${path}: the key '${bad[bad.length - 1]}' is not allowed (it could change object prototypes)`, { param: path, code: 'forbidden_key' });
    }
  }
  return value;
}

/** The path of the first forbidden key, depth first; iterative, so deep nesting cannot overflow the stack. */
function forbiddenKeyPath(root: unknown): string[] | null {
  const stack: { value: unknown; path: string[] }[] = [{ value: root, path: [] }];
  while (stack.length) {
    const { value, path } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: [...path, String(i)] });
      continue;
    }
    const keys = Object.keys(value);
    for (const key of keys) {
      const child = (value as Record<string, unknown>)[key];
      if (key === '__proto__') return [...path, key];
      if (key === 'constructor' && typeof child === 'object' && child !== null && Object.prototype.hasOwnProperty.call(child, 'prototype')) return [...path, key];
    }
    for (let k = keys.length - 1; k >= 0; k--) stack.push({ value: (value as Record<string, unknown>)[keys[k]!], path: [...path, keys[k]!] });
  }
  return null;
}
