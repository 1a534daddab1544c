/** Runs the built `attune` CLI as a child process, as a user would, and never throws on exit codes. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { modelsDir, repoRoot } from '../helpers/models-dir.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function attune(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), ...args], { env: { ...process.env, ATTUNE_MODELS_DIR: modelsDir } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export const CLOZE_DIR = join(repoRoot, 'models', 'eval', 'stories-cloze');
