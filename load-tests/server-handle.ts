/**
 * Starts server-process.js, waits until it answers /ready, and stops it. The server's log lines are
 * echoed with a prefix, and the warnings and errors among them are kept, because "the server
 * complained under load" belongs in a load-test report even when every response was a 200.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { CONFIG_FILE_OPTION, OPTIONS } from '../src/config/options.js';
import { modelFlags } from './model.js';
import type { ToParent } from './server-process.js';

export interface ServerHandle {
  url: string;
  /** The `attune serve` flags it runs with, besides the model and log level. */
  flags: string[];
  /** Pino lines at warn or above, as logged. */
  readonly problems: string[];
  /** The /metrics text. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;
/** pino's numeric level for warn. */
const WARN = 40;

/**
 * `flags` are `attune serve` flags on top of the model's, plus any in LOAD_SERVER_FLAGS
 * (space-separated, e.g. "--threads 2"). The server's configuration comes from flags only: the
 * ATTUNE_* settings, PORT, HOST and ATTUNE_CONFIG of this shell are not passed on, so an API key
 * or a config file meant for another server cannot change what is measured.
 */
export async function startServer(flags: readonly string[] = []): Promise<ServerHandle> {
  const logLevel = process.env.LOAD_LOG_LEVEL ?? 'warn';
  const serveFlags = [...flags, ...(process.env.LOAD_SERVER_FLAGS ?? '').split(/\s+/).filter((f) => f.length > 0)];
  const child = fork(new URL('./server-process.js', import.meta.url), [...modelFlags(), '--log-level', logLevel, ...serveFlags], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    execArgv: [],
    env: serverEnv(),
  });
  const problems: string[] = [];
  echo(child.stdout, problems);
  echo(child.stderr, problems);

  const url = await new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null) => fail(new Error(`the server exited with code ${code} before listening`));
    const timer = setTimeout(() => fail(new Error(`the server did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    const settle = () => {
      clearTimeout(timer);
      child.off('exit', onExit);
    };
    const fail = (e: Error) => {
      settle();
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('exit', onExit);
    child.once('message', (m: ToParent) => {
      if (m.type !== 'listening') return fail(new Error(`the server failed to start: ${m.message}`));
      settle();
      resolve(m.url);
    });
  });
  try {
    await waitReady(url);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }

  return {
    url,
    flags: serveFlags,
    problems,
    async metrics() {
      return (await fetch(`${url}/metrics`)).text();
    },
    stop: () => stopChild(child),
  };
}

function serverEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of [...OPTIONS.map((o) => o.env), CONFIG_FILE_OPTION.env]) delete env[name];
  return env;
}

function echo(stream: Readable | null, problems: string[]): void {
  if (!stream) return;
  createInterface({ input: stream }).on('line', (line) => {
    process.stdout.write(`[server] ${line}\n`);
    if (levelOf(line) >= WARN) problems.push(line);
  });
}

function levelOf(line: string): number {
  try {
    const parsed = JSON.parse(line) as { level?: unknown };
    return typeof parsed.level === 'number' ? parsed.level : WARN;
  } catch {
    // Not pino: a crash trace or a warning from Node itself.
    return WARN;
  }
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      if ((await fetch(`${url}/ready`)).ok) return;
    } catch {
      // Not accepting connections yet.
    }
    if (Date.now() > deadline) throw new Error(`${url}/ready did not answer 200 within ${START_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.send({ type: 'stop' });
  });
}
