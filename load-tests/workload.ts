/**
 * The requests the load tests send. Request i is a pure function of i (prompt, max_tokens,
 * temperature mix, seed), so two runs, or the HTTP and engine halves of the benchmark, send exactly
 * the same work.
 */
import { readFileSync } from 'node:fs';
import { RowRng } from '../src/engine/sampling/rng.js';

export type Endpoint = '/v1/completions' | '/v1/chat/completions';

export interface LoadRequest {
  path: Endpoint;
  body: Record<string, unknown>;
  stream: boolean;
  /** Groups requests in the report, e.g. by calibration variant. */
  label: string;
}

/** The j-th request of one connection, out of `connections`. */
export type RequestSource = (connection: number, j: number) => LoadRequest;

export function loadPrompts(): string[] {
  const text = readFileSync(new URL('../../load-tests/data/prompts.txt', import.meta.url), 'utf8');
  return text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
}

/** Seeded uniforms in [0, 1) from the engine's generator: reproducible, one PRNG project-wide. */
function rng(seed: number): () => number {
  const g = RowRng.fromSeed(seed);
  return () => g.nextUniform();
}

const MAX_TOKENS = [16, 32, 48, 64, 96, 128, 160, 200] as const;

export interface SamplingMix {
  max_tokens: number;
  temperature: number;
  seed: number;
  top_p?: number;
  top_k?: number;
}

/** A quarter greedy, the rest sampled with and without top-p / top-k; every request seeded. */
export function samplingFor(i: number, maxTokens: readonly number[] = MAX_TOKENS): SamplingMix {
  const r = rng(0x5eed + i);
  const base = { max_tokens: maxTokens[Math.floor(r() * maxTokens.length)]!, seed: 1000 + i };
  switch (i % 4) {
    case 0:
      return { ...base, temperature: 0 };
    case 1:
      return { ...base, temperature: 0.7 };
    case 2:
      return { ...base, temperature: 1.0, top_p: 0.9 };
    default:
      return { ...base, temperature: 0.8, top_k: 40 };
  }
}

export function promptFor(i: number, prompts: readonly string[]): string {
  return prompts[Math.floor(rng(0xbeef + i)() * prompts.length)]!;
}

export function chatMessages(i: number, prompts: readonly string[]): { role: string; content: string }[] {
  const user = { role: 'user', content: promptFor(i, prompts) };
  return i % 3 === 0 ? [{ role: 'system', content: 'You tell short, happy stories for children.' }, user] : [user];
}

/** Spreads request indices over connections so the first `amount` indices are all sent. */
export function interleaved(connections: number, make: (i: number) => LoadRequest): RequestSource {
  return (connection, j) => make(j * connections + connection);
}
