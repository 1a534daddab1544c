/**
 * Continuous batching through the real worker: concurrent requests give exactly the tokens each
 * gives alone, greedy and seeded; an aborted request frees its slot and leaves the others unchanged.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { modelsDir } from '../helpers/models-dir.js';
import { EngineClient } from '../../src/engine/engine-client.js';
import { resolveModel } from '../../models/resolve.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';
import type { SamplingParams } from '../../src/engine/types.js';

const PROMPTS = [
  'Once upon a time',
  'The little dog',
  'Tom and Sue went to the park. They saw a big',
  'One day, a girl named Mia found a shiny',
  'The sun was hot and the',
  'Ben had a red ball. He liked to throw it to his friend, but one day the ball went over the fence and',
  'Lily',
  'There was a cat who lived in a small house near the sea. Every morning the cat',
];

interface Outcome {
  ids: number[];
  reason: string | null;
}

async function collect(client: EngineClient, id: string, promptIds: number[], sampling: Partial<SamplingParams>, onToken?: (n: number) => void): Promise<Outcome> {
  const ids: number[] = [];
  let reason: string | null = null;
  for await (const e of client.generate({ id, promptIds, sampling: { ...GREEDY_DEFAULTS, ...sampling }, calibration: {} })) {
    if (e.type === 'tokens') {
      ids.push(...e.tokenIds);
      onToken?.(ids.length);
    } else if (e.type === 'finish') reason = e.reason;
    else if (e.type === 'error') assert.fail(e.message);
  }
  return { ids, reason };
}

describe('continuous batching', () => {
  let client: EngineClient;
  let tok: Tokenizer;
  before(async () => {
    const model = await resolveModel('stories260K', { modelsDir, download: false });
    // A small prefill chunk so long prompts are chunked while others decode.
    client = await EngineClient.start({ model, engine: { maxBatch: 8, prefillChunk: 16, maxPrefillTokensPerStep: 64 } });
    tok = await loadTokenizer(model);
  });
  after(() => client.close());

  for (const mode of ['greedy', 'seeded sampling'] as const) {
    it(`8 concurrent prompts give exactly their solo tokens (${mode})`, async () => {
      const sampling = (i: number): Partial<SamplingParams> =>
        mode === 'greedy' ? { maxTokens: 60 } : { maxTokens: 60, temperature: 0.9, topP: 0.95, seed: 1000 + i };
      const prompts = PROMPTS.map((p) => tok.encode(p, { addBos: true }));
      const solo: Outcome[] = [];
      for (const [i, p] of prompts.entries()) solo.push(await collect(client, `solo-${mode}-${i}`, p, sampling(i)));
      const together = await Promise.all(prompts.map((p, i) => collect(client, `batch-${mode}-${i}`, p, sampling(i))));
      together.forEach((t, i) => assert.deepEqual(t.ids, solo[i]!.ids, `prompt ${i} differs when batched`));
      assert.ok(new Set(solo.map((s) => s.ids.join(','))).size > 1, 'prompts should not all give the same text');
    });
  }

  it('an aborted request frees its slot at once and the other rows are unchanged', async () => {
    const prompts = PROMPTS.slice(0, 4).map((p) => tok.encode(p, { addBos: true }));
    const solo = [];
    for (const [i, p] of prompts.entries()) solo.push(await collect(client, `c-solo-${i}`, p, { maxTokens: 80, ignoreEos: true }));

    // The stats that arrive with the aborted row's finish event are taken after its slot was freed.
    let slotsAtAbortFinish = -1;
    const onEvent = (e: { type: string; id: string }) => {
      if (e.type === 'finish' && e.id === 'c-abort') slotsAtAbortFinish = client.stats.slotsInUse;
    };
    client.on('event', onEvent);
    const runs = prompts.map((p, i) =>
      i === 1
        ? collect(client, `c-abort`, p, { maxTokens: 80, ignoreEos: true }, (n) => {
            if (n === 10) client.abort('c-abort');
          })
        : collect(client, `c-${i}`, p, { maxTokens: 80, ignoreEos: true }),
    );
    const [r0, r1, r2, r3] = (await Promise.all(runs)) as Outcome[];
    client.off('event', onEvent);
    assert.equal(r1!.reason, 'abort');
    assert.ok(r1!.ids.length < 80, 'the aborted request stopped early');
    assert.equal(slotsAtAbortFinish, 3, 'the aborted row gave its slot back while the other three still ran');
    for (const [i, r] of [[0, r0], [2, r2], [3, r3]] as const) assert.deepEqual(r!.ids, solo[i]!.ids);
    // All slots come back.
    assert.equal(client.stats.slotsInUse, 0);
  });
});
