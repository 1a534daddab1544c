/**
 * `npm run bench:hostile`: what single hostile requests do to everyone else. The server runs in a
 * child process (server-handle.ts); beside each hostile request this process keeps probing /health
 * every few milliseconds and keeps a live stream running (a greedy generation, restarted whenever it
 * ends), and prints, per case, the hostile request's answer and time, the slowest /health answer and
 * the longest gap between two events of the live stream, next to the same figures with no hostile
 * request (the baseline), all measured in one run.
 *
 * The cases are issue 14's: huge collections (a million calibration layer keys or logit_bias keys,
 * eight million prompt ids, a four-million-element head list, eight million ids to detokenize, a
 * million messages) and a response of every field's maximum (32 prompts x 511 ids, n 16, echo,
 * logprobs and prompt_logprobs 20). Bodies are built before the measurement starts.
 * BENCH_HOSTILE_REPEATS (default 3) runs each case that many times; the worst of them is printed.
 */
import { machineHeader } from './report.js';
import { startServer, type ServerHandle } from './server-handle.js';

const REPEATS = Number(process.env.BENCH_HOSTILE_REPEATS ?? 3);
const PROBE_EVERY_MS = 5;
/** The window after the hostile answer during which the probes keep counting. */
const TAIL_MS = 200;

interface Case {
  name: string;
  path: string;
  body: Buffer | null;
}

const list = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join(',');

function cases(): Case[] {
  const prompts = Array.from({ length: 32 }, () => Array.from({ length: 511 }, (_, i) => 1 + (i % 500)));
  return [
    { name: 'baseline (no hostile request)', path: '', body: null },
    { name: '1M calibration.act.heads layer keys', path: '/v1/completions', body: Buffer.from(`{"prompt":"x","calibration":{"act":{"heads":{${list(1_000_000, (i) => `"${i}":[]`)}}}}}`) },
    { name: '1.1M logit_bias keys', path: '/v1/completions', body: Buffer.from(`{"prompt":"x","logit_bias":{${list(1_100_000, (i) => `"${i}":1`)}}}`) },
    { name: '8M prompt ids', path: '/v1/completions', body: Buffer.from(`{"prompt":[${list(8_000_000, () => '1')}]}`) },
    { name: 'act.heads."2" with 4M elements', path: '/v1/completions', body: Buffer.from(`{"prompt":"x","calibration":{"act":{"heads":{"2":[${list(4_000_000, () => '0')}]}}}}`) },
    { name: '/detokenize 8M ids', path: '/detokenize', body: Buffer.from(`{"tokens":[${list(8_000_000, () => '1')}]}`) },
    { name: '1M messages', path: '/v1/chat/completions', body: Buffer.from(`{"messages":[${list(1_000_000, () => '{}')}]}`) },
    {
      // Small enough for admission beside the live stream: 64 sequences, 1.4M logprob entries.
      name: 'a huge response (4 x 511 ids, n 16, echo, logprobs 20, prompt_logprobs 20)',
      path: '/v1/completions',
      body: Buffer.from(JSON.stringify({ prompt: prompts.slice(0, 4), n: 16, echo: true, logprobs: 20, prompt_logprobs: 20 })),
    },
    {
      name: 'every field at its maximum (32 x 511 ids, n 16, echo, logprobs 20, prompt_logprobs 20)',
      path: '/v1/completions',
      body: Buffer.from(JSON.stringify({ prompt: prompts, n: 16, echo: true, logprobs: 20, prompt_logprobs: 20 })),
    },
  ];
}

interface Measured {
  status: string;
  hostileMs: number;
  worstHealthMs: number;
  worstGapMs: number;
}

/** /health probes and live streams until `stop` resolves; the worst latency and gap seen. */
async function bystanders(url: string, stop: Promise<void>): Promise<{ worstHealthMs: number; worstGapMs: number }> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  let worstHealthMs = 0;
  let worstGapMs = 0;
  const probes = (async () => {
    while (!stopped) {
      const t = performance.now();
      try {
        await (await fetch(`${url}/health`)).arrayBuffer();
      } catch {
        worstHealthMs = Infinity;
      }
      worstHealthMs = Math.max(worstHealthMs, performance.now() - t);
      await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
    }
  })();
  const streams = (async () => {
    while (!stopped) {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: [1], max_tokens: 500, ignore_eos: true, temperature: 0, stream: true }),
      });
      let last = performance.now();
      for await (const _chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const now = performance.now();
        worstGapMs = Math.max(worstGapMs, now - last);
        last = now;
      }
    }
  })();
  await Promise.all([probes, streams]);
  return { worstHealthMs, worstGapMs };
}

async function measure(server: ServerHandle, c: Case): Promise<Measured> {
  let release!: () => void;
  const stop = new Promise<void>((r) => (release = r));
  const watching = bystanders(server.url, stop);
  await new Promise((r) => setTimeout(r, 300));
  const t = performance.now();
  let status = '-';
  if (c.body) {
    try {
      const res = await fetch(`${server.url}${c.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array(c.body) });
      const text = await res.text();
      const code = /"code":"([^"]*)"/.exec(text)?.[1];
      status = `${res.status}${code ? ` ${code}` : ''}`;
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      status = `failed: ${cause?.code ?? cause?.message ?? (e as Error).message}`;
    }
  } else await new Promise((r) => setTimeout(r, 1000));
  const hostileMs = performance.now() - t;
  await new Promise((r) => setTimeout(r, TAIL_MS));
  release();
  return { status, hostileMs, ...(await watching) };
}

async function main(): Promise<void> {
  const all = cases();
  const server = await startServer();
  try {
    console.log(machineHeader('bench:hostile'));
    console.log(`server ${server.url} (flags: ${server.flags.join(' ') || 'none'}); worst of ${REPEATS} runs per case\n`);
    console.log(`${'case'.padEnd(92)} ${'answer'.padEnd(28)} ${'time'.padStart(9)} ${'/health'.padStart(9)} ${'stream gap'.padStart(11)}`);
    for (const c of all) {
      const runs: Measured[] = [];
      for (let i = 0; i < REPEATS; i++) runs.push(await measure(server, c));
      const worst = (f: (m: Measured) => number) => Math.max(...runs.map(f));
      const ms = (v: number) => `${v.toFixed(0)} ms`;
      console.log(`${c.name.padEnd(92)} ${runs[0]!.status.padEnd(28)} ${ms(worst((m) => m.hostileMs)).padStart(9)} ${ms(worst((m) => m.worstHealthMs)).padStart(9)} ${ms(worst((m) => m.worstGapMs)).padStart(11)}`);
    }
    if (server.problems.length) console.log(`\nthe server logged ${server.problems.length} warnings or errors`);
  } finally {
    await server.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
