/** The flags and environment variables an `attune` command accepts, read from its real --help. */
import assert from 'node:assert/strict';
import { attune } from '../eval/cli-runner.js';

export interface CliOptions {
  /** Long flag names without the dashes. */
  flags: Set<string>;
  envs: Set<string>;
}

export async function cliOptions(command: string): Promise<CliOptions> {
  const r = await attune([command, '--help']);
  assert.equal(r.code, 0, r.stderr);
  // Flag lines are indented two spaces; an env var sits alone on the line under its flag.
  const flags = new Set([...r.stdout.matchAll(/^ {2}(?:-\w, )?--([a-z0-9][a-z0-9-]*)/gm)].map((m) => m[1]!));
  const envs = new Set([...r.stdout.matchAll(/^ {6}([A-Z][A-Z0-9_]*)\s*$/gm)].map((m) => m[1]!));
  assert.ok(flags.size > 0, `attune ${command} --help lists no flags`);
  return { flags, envs };
}
