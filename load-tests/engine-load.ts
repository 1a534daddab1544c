/**
 * The engine-alone side of the benchmark: `clients` concurrent loops over EngineClient.generate(),
 * each running its jobs back to back, exactly as the HTTP clients do over sockets. What it leaves
 * out is what the HTTP path adds: request parsing and validation, chat templating, tokenizing,
 * detokenizing, JSON and SSE framing, and the client reading all of it.
 */
import type { EngineClient } from '../src/engine/engine-client.js';
import type { SamplingParams } from '../src/engine/types.js';

export interface EngineJob {
  promptIds: number[];
  sampling: SamplingParams;
}

export interface EngineLoadResult {
  completionTokens: number;
  wallSeconds: number;
  /** generate() → first event carrying a token, per request. */
  ttftMs: number[];
  errors: string[];
}

let sequence = 0;

export async function runEngineLoad(engine: EngineClient, clients: number, perClient: number, jobFor: (client: number, j: number) => EngineJob): Promise<EngineLoadResult> {
  const result: EngineLoadResult = { completionTokens: 0, wallSeconds: 0, ttftMs: [], errors: [] };
  const start = performance.now();
  let end = start;
  const loop = async (client: number) => {
    for (let j = 0; j < perClient; j++) {
      const job = jobFor(client, j);
      const sentAt = performance.now();
      let first: number | null = null;
      for await (const e of engine.generate({ id: `engine-load-${sequence++}`, promptIds: job.promptIds, sampling: job.sampling, calibration: {} })) {
        if (e.type === 'tokens' && e.tokenIds.length > 0) first ??= performance.now() - sentAt;
        else if (e.type === 'finish') result.completionTokens += e.completionTokens;
        else if (e.type === 'error') result.errors.push(`${e.reason}: ${e.message}`);
      }
      if (first !== null) result.ttftMs.push(first);
      end = Math.max(end, performance.now());
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => loop(c)));
  result.wallSeconds = (end - start) / 1000;
  return result;
}
