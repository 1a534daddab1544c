/**
 * Readiness trusts generated tokens as proof of a working forward pass, but not failures: after an
 * internal engine error, /ready runs a real probe instead of reusing the last success.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Readiness } from '../../src/api/readiness.js';
import { Lifecycle } from '../../src/api/lifecycle.js';
import type { EngineClient } from '../../src/engine/engine-client.js';
import { startEngine } from '../helpers/test-server.js';

describe('Readiness', () => {
  let engine: EngineClient;
  let probes = 0;
  before(async () => {
    engine = await startEngine({ maxBatch: 1 });
    const real = engine.probe.bind(engine);
    engine.probe = (timeoutMs?: number) => {
      probes++;
      return real(timeoutMs);
    };
  });
  after(() => engine.close());

  it('counts tokens as a passed forward, and an internal error as a reason to probe again', async () => {
    const readiness = new Readiness(engine, new Lifecycle(), 60_000);
    try {
      assert.deepEqual(await readiness.check(), { ready: true });
      assert.equal(probes, 1, 'the first check probes');
      assert.deepEqual(await readiness.check(), { ready: true });
      assert.equal(probes, 1, 'a fresh probe is reused');

      engine.emit('event', { type: 'error', id: 'x', reason: 'internal', message: 'forward pass failed' });
      assert.deepEqual(await readiness.check(), { ready: true });
      assert.equal(probes, 2, 'an internal failure forces a real probe');

      engine.emit('event', { type: 'error', id: 'x', reason: 'internal', message: 'forward pass failed' });
      engine.emit('event', { type: 'tokens', id: 'y', tokenIds: [5], text: 'a', logprobs: null });
      assert.deepEqual(await readiness.check(), { ready: true });
      assert.equal(probes, 2, 'a generated token proves a forward passed');
    } finally {
      readiness.dispose();
    }
  });
});
