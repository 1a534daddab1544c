/** The repository's Dockerfile, read as instructions (no container engine is needed to read it). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './models-dir.js';

export interface Instruction {
  op: string;
  args: string;
}

/** Instructions with line continuations joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\S+)\s+(.*)$/.exec(l)!;
      return { op: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ') };
    });
}

export const dockerfile = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));

/** Instructions per stage, each starting with its FROM. */
export const stages: Instruction[][] = (() => {
  const out: Instruction[][] = [];
  for (const ins of dockerfile) {
    if (ins.op === 'FROM') out.push([]);
    out.at(-1)?.push(ins);
  }
  return out;
})();
export const buildStage = stages[0]!;
export const runtimeStage = stages.at(-1)!;

export function argDefault(name: string): string | undefined {
  const arg = dockerfile.find((i) => i.op === 'ARG' && i.args.startsWith(`${name}=`));
  return arg?.args.slice(name.length + 1);
}

/** KEY="value" pairs of the stage's LABEL instructions (or ENV ones with `op`). */
export function keyValues(stage: Instruction[], op: 'LABEL' | 'ENV'): Map<string, string> {
  const out = new Map<string, string>();
  for (const ins of stage.filter((i) => i.op === op)) {
    for (const m of ins.args.matchAll(/([\w.-]+)=(?:"([^"]*)"|(\S+))/g)) out.set(m[1]!, m[2] ?? m[3]!);
  }
  return out;
}

/** The environment the runtime image gives every container. */
export const imageEnv: Record<string, string> = Object.fromEntries(keyValues(runtimeStage, 'ENV'));
