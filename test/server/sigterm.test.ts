/**
 * Graceful shutdown of the real CLI in a child process: after SIGTERM, requests already in flight
 * (one running, three queued behind a single batch slot) finish in full, new ones get 503 while
 * they do, then the server stops listening and the process exits 0.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { assertErrorShape, getJson, postJson } from '../helpers/http.js';
import { metricValue, scrape } from '../helpers/metrics-text.js';
import { modelsDir, repoRoot } from '../helpers/models-dir.js';
import type { Completion } from '../helpers/openai-types.js';
import { postStream, readSse } from '../helpers/sse.js';
import { waitFor } from '../helpers/wait.js';

const LONG = { prompt: [1], max_tokens: 500, temperature: 0, ignore_eos: true };

function startCli(args: string[]): { child: ChildProcess; url: Promise<string>; exited: Promise<number | null>; output: string[] } {
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'serve', ...args], {
    env: { ...process.env, ATTUNE_MODELS_DIR: modelsDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line);
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (m) resolve(m[1]!);
    });
    child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    void exited.then((code) => reject(new Error(`attune serve exited with ${code} before listening:\n${output.join('\n')}`)));
  });
  return { child, url, exited, output };
}

describe('SIGTERM', () => {
  let cli: ReturnType<typeof startCli> | null = null;
  after(() => {
    if (cli && cli.child.exitCode === null) cli.child.kill('SIGKILL');
  });

  it('finishes in-flight requests, refuses new ones with 503, closes, and exits 0', async () => {
    cli = startCli(['--port', '0', '--max-batch', '1', '--drain-timeout', '120', '--log-level', 'info']);
    const url = await cli.url;

    const stream = await postStream(`${url}/v1/completions`, { ...LONG, stream: true });
    assert.equal(stream.status, 200);
    const reader = readSse(stream);
    await reader.events.next();
    const queued = [1, 2, 3].map(() => postJson<Completion>(`${url}/v1/completions`, LONG));
    await waitFor(async () => metricValue(await scrape(url), 'attune:num_requests_waiting') === 3, 'three requests to queue');

    cli.child.kill('SIGTERM');
    await waitFor(async () => (await getJson(`${url}/ready`)).status === 503, 'the server to start draining');
    const refused = await postJson(`${url}/v1/completions`, { prompt: 'Once', max_tokens: 2 });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get('retry-after'));
    assert.match(assertErrorShape(refused.body).message, /shutting down/);

    let done = false;
    let finish: string | null = null;
    for await (const e of reader.events) {
      if (e.data === '[DONE]') done = true;
      else finish = (JSON.parse(e.data) as Completion).choices[0]?.finish_reason ?? finish;
    }
    assert.ok(done, 'the running stream completed');
    assert.equal(finish, 'length');
    for (const r of await Promise.all(queued)) {
      assert.equal(r.status, 200);
      assert.equal(r.body.usage!.completion_tokens, 500);
      assert.equal(r.body.choices[0]!.finish_reason, 'length');
    }

    assert.equal(await cli.exited, 0, cli.output.join('\n'));
    await assert.rejects(fetch(`${url}/health`), 'nothing listens after exit');
    assert.ok(cli.output.some((l) => l.includes('"drained"')), 'the drain was logged');
  });
});
