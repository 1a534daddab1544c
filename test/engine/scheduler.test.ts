/**
 * The scheduler's prefill planning, as a pure function over rows: a companion is prefilled only
 * together with its main row, whole, never on its own (e.g. while the main row is still encoding
 * its images, so only the companion is ready).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planPrefill } from '../../src/engine/scheduler.js';
import type { Row, RowPhase } from '../../src/engine/sequences.js';

interface FakeUnit {
  graphKey: string;
  wholePrefill: boolean;
  companions: Row[];
}

function unit(graphKey = 'calibrated'): FakeUnit {
  return { graphKey, wholePrefill: false, companions: [] };
}

function row(u: FakeUnit, role: Row['role'], length: number, phase: RowPhase = 'prefill'): Row {
  const r = { unit: u, role, name: role === 'main' ? '' : 'c', owner: null, promptIds: new Array(length).fill(1), images: [], slot: null, phase, prefilled: 0, lastToken: 1, promptLogprobs: null } as unknown as Row;
  if (role === 'companion') u.companions.push(r);
  return r;
}

const options = { prefillChunk: 4, maxPrefillTokensPerStep: 64 };

describe('planPrefill', () => {
  it('never plans a companion whose main row is not ready (it is still encoding)', () => {
    const encoding = unit();
    row(encoding, 'main', 10, 'encode');
    const companion = row(encoding, 'companion', 6);
    assert.equal(planPrefill([companion], options), null);
    // With a ready request behind it, that request is planned (with its own companion), not the orphan.
    const ready = unit('plain');
    const main = row(ready, 'main', 5);
    const itsCompanion = row(ready, 'companion', 3);
    const plan = planPrefill([companion, main, itsCompanion], options)!;
    assert.equal(plan.graphKey, 'plain');
    assert.deepEqual(plan.items.map((i) => [i.row, i.tokens]), [[main, 5], [itsCompanion, 3]], 'a request with a companion is prefilled whole, both rows in one call');
  });

  it('chunks a lone long prompt, and keeps graphs apart', () => {
    const a = unit('plain');
    const b = unit('calibrated');
    const ra = row(a, 'main', 10);
    const rb = row(b, 'main', 3);
    const plan = planPrefill([ra, rb], options)!;
    assert.deepEqual(plan.items.map((i) => [i.row, i.tokens]), [[ra, 4]]);
  });
});
