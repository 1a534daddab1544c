/** zod at the edge: a failed parse becomes one 400 whose `param` is the path of the first bad field. */
import { z } from 'zod';
import { badRequest, fieldPath } from './errors.js';

type Issue = z.core.$ZodIssue;

export interface DescribedIssue {
  path: PropertyKey[];
  message: string;
  /** The error code for the response: a refinement's own (e.g. `unsupported_parameter`), else `invalid_value`. */
  code: string;
}

/** A refinement failure carries its own error code, e.g. `unsupported_parameter`. */
export function issueParams(code: string): { params: { code: string } } {
  return { params: { code } };
}

/** The most useful reading of a failed parse's first issue. */
export function describeIssue(issues: readonly Issue[]): DescribedIssue {
  const { issue, path } = mostSpecific(issues[0]!, []);
  const custom = issue.code === 'custom' ? (issue.params as { code?: unknown } | undefined)?.code : undefined;
  const inner = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
  return {
    path,
    message: inner ? `invalid key: ${inner}` : issue.message,
    code: typeof custom === 'string' ? custom : 'invalid_value',
  };
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const d = describeIssue(r.error.issues);
  const param = d.path.length ? fieldPath(d.path) : null;
  throw badRequest(param ? `${param}: ${d.message}` : d.message, param, d.code);
}

/**
 * "Invalid input" from a union says nothing. The branch whose type matched names the real problem
 * (`stop: at most 2 stop strings`, not `stop: Invalid input`), and among those the deepest one.
 */
function mostSpecific(issue: Issue, base: PropertyKey[]): { issue: Issue; path: PropertyKey[] } {
  const path = [...base, ...issue.path];
  if (issue.code !== 'invalid_union' || !issue.errors.length) return { issue, path };
  let best: { issue: Issue; path: PropertyKey[] } | null = null;
  for (const branch of issue.errors) {
    const first = branch[0];
    // A branch that failed on its own type (or literal) at the union's path is simply the wrong branch.
    if (!first || (first.path.length === 0 && (first.code === 'invalid_type' || first.code === 'invalid_value'))) continue;
    const candidate = mostSpecific(first, path);
    if (!best || candidate.path.length > best.path.length) best = candidate;
  }
  return best ?? { issue, path };
}
