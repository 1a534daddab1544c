import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SlotPool, type SlotHandle } from '../../src/engine/slot-pool.js';
import type { RowStateSpec } from '../../models/compiler/hooks.js';

const kv: RowStateSpec = { name: 'k', outputName: 'k.update', dims: [2, 'keys', 3], update: 'append', owner: 'decoder' };
const sums: RowStateSpec = { name: 's', outputName: 's.update', dims: [2, 'keys'], update: 'replace', owner: 'act' };
const flat: RowStateSpec = { name: 'f', outputName: 'f.update', dims: [4], update: 'overwrite', owner: 'x' };

/** Reads row positions [0, n) of the kv state as nested arrays [head][pos][inner]. */
function readKv(pool: SlotPool, h: SlotHandle, n: number): number[][][] {
  const v = pool.rowView('k', h);
  const cap = pool.capacity;
  return [0, 1].map((o) => Array.from({ length: n }, (_, p) => Array.from(v.subarray((o * cap + p) * 3, (o * cap + p) * 3 + 3))));
}

/** An 'append' output for one row: T new positions with values encoding (row tag, head, position). */
function appendOutput(tag: number, T: number, past: number): Float32Array {
  const out = new Float32Array(2 * T * 3);
  for (let o = 0; o < 2; o++) for (let t = 0; t < T; t++) for (let i = 0; i < 3; i++) out[(o * T + t) * 3 + i] = tag * 1000 + o * 100 + (past + t) * 10 + i;
  return out;
}

describe('SlotPool', () => {
  it('appends new positions after the past, per head', () => {
    const pool = new SlotPool([kv], 4, 256, 4);
    const h = pool.acquire()!;
    pool.writeBack('k', h, appendOutput(1, 3, 0), 0, 3, 3, 0, 0);
    h.used = 3;
    pool.writeBack('k', h, appendOutput(1, 1, 3), 0, 1, 1, pool.capacity, 3);
    h.used = 4;
    const got = readKv(pool, h, 4);
    assert.deepEqual(got[1]![3], [1130, 1131, 1132]);
    assert.deepEqual(got[0]![0], [1000, 1001, 1002]);
  });

  it('writes only the real tokens of a padded row', () => {
    const pool = new SlotPool([kv], 2, 64, 4);
    const h = pool.acquire()!;
    const padded = appendOutput(2, 4, 0);
    pool.writeBack('k', h, padded, 0, 4, 2, 0, 0);
    h.used = 2;
    const v = pool.rowView('k', h);
    assert.equal(v[2 * 3], 0, 'position 2 must stay empty');
  });

  it('replace states keep the past part and append the new part', () => {
    const pool = new SlotPool([sums], 2, 64, 8);
    const h = pool.acquire()!;
    // fresh: keys = T = 2 → positions 0,1
    pool.writeBack('s', h, Float32Array.from([1, 2, 10, 20]), 0, 2, 2, 0, 0);
    h.used = 2;
    // decode with fedCap = 8: output [2 heads, 8 + 1 keys]
    const out = new Float32Array(2 * 9);
    out.set([5, 6, 0, 0, 0, 0, 0, 0, 7], 0);
    out.set([50, 60, 0, 0, 0, 0, 0, 0, 70], 9);
    pool.writeBack('s', h, out, 0, 1, 1, 8, 2);
    const v = pool.rowView('s', h);
    assert.deepEqual(Array.from(v.subarray(0, 3)), [5, 6, 7]);
    assert.deepEqual(Array.from(v.subarray(8, 11)), [50, 60, 70]);
  });

  it('keeps decoding rows packed when rows are promoted and released, moving their data', () => {
    const pool = new SlotPool([kv, flat], 4, 64, 4);
    const rows = [0, 1, 2].map((tag) => {
      const h = pool.acquire()!;
      pool.writeBack('k', h, appendOutput(tag, 2, 0), 0, 2, 2, 0, 0);
      pool.writeBack('f', h, Float32Array.from([tag, tag, tag, tag]), 0, 1, 1, 0, 0);
      h.used = 2;
      return h;
    });
    pool.promote(rows[2]!, 'g');
    assert.equal(rows[2]!.index, 0);
    assert.equal(pool.decoding, 1);
    assert.deepEqual(readKv(pool, rows[2]!, 2)[0]![1], [2010, 2011, 2012]);
    pool.promote(rows[0]!, 'g');
    pool.promote(rows[1]!, 'g');
    assert.equal(pool.decoding, 3);
    assert.deepEqual(new Set(rows.map((r) => r.index)), new Set([0, 1, 2]));
    pool.release(rows[2]!);
    assert.equal(pool.decoding, 2);
    assert.equal(pool.inUse, 2);
    for (const [tag, h] of [[0, rows[0]!], [1, rows[1]!]] as const) {
      assert.ok(h.index < 2);
      assert.deepEqual(readKv(pool, h, 2)[1]![1], [tag * 1000 + 110, tag * 1000 + 111, tag * 1000 + 112]);
      assert.deepEqual(Array.from(pool.rowView('f', h)), [tag, tag, tag, tag]);
    }
  });

  it('keeps each decode group in one contiguous run through promotions and releases, data following its row', () => {
    const pool = new SlotPool([kv, flat], 12, 64, 4);
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const live = new Map<number, { h: ReturnType<SlotPool['acquire']> & object; group: string; decoding: boolean }>();
    let tag = 0;
    for (let op = 0; op < 400; op++) {
      const choice = rand(3);
      if (choice === 0 && pool.free > 0) {
        const h = pool.acquire()!;
        pool.writeBack('k', h, appendOutput(tag, 2, 0), 0, 2, 2, 0, 0);
        pool.writeBack('f', h, Float32Array.from([tag, tag, tag, tag]), 0, 1, 1, 0, 0);
        h.used = 2;
        live.set(tag++, { h, group: `g${rand(4)}`, decoding: false });
      } else if (choice === 1) {
        const waiting = [...live.values()].filter((r) => !r.decoding);
        const r = waiting[rand(Math.max(1, waiting.length))];
        if (r) {
          pool.promote(r.h, r.group);
          r.decoding = true;
        }
      } else {
        const tags = [...live.keys()];
        const t = tags[rand(Math.max(1, tags.length))];
        if (t !== undefined) {
          pool.release(live.get(t)!.h);
          live.delete(t);
        }
      }
      const runs = pool.runs();
      assert.equal(new Set(runs.map((r) => r.group)).size, runs.length, `op ${op}: a group is split into several runs`);
      assert.equal(runs.reduce((n, r) => n + r.count, 0), pool.decoding);
      for (const [t, r] of live) {
        assert.equal(r.h.index < pool.decoding, r.decoding, `op ${op}: row ${t} is on the wrong side of the decoding region`);
        if (r.decoding) {
          const run = runs.find((x) => r.h.index >= x.start && r.h.index < x.start + x.count)!;
          assert.equal(run.group, r.group, `op ${op}: row ${t} sits in another group's run`);
        }
        assert.deepEqual(readKv(pool, r.h, 2)[1]![1], [t * 1000 + 110, t * 1000 + 111, t * 1000 + 112], `op ${op}: row ${t}'s cache moved without it`);
        assert.deepEqual(Array.from(pool.rowView('f', r.h)), [t, t, t, t]);
      }
    }
  });

  it('grows and shrinks capacity, keeping every live row', () => {
    const pool = new SlotPool([kv], 2, 64, 4);
    const h = pool.acquire()!;
    pool.writeBack('k', h, appendOutput(3, 3, 0), 0, 3, 3, 0, 0);
    h.used = 3;
    pool.ensureCapacity(20);
    assert.equal(pool.capacity, 32);
    assert.deepEqual(readKv(pool, h, 3)[1]![2], [3120, 3121, 3122]);
    assert.throws(() => pool.ensureCapacity(65), /exceeds/);
    pool.shrinkToFit();
    assert.equal(pool.capacity, 8);
    assert.deepEqual(readKv(pool, h, 3)[1]![2], [3120, 3121, 3122]);
  });

  it('starts overwrite states at their declared initial value in every newly acquired slot', () => {
    const gain: RowStateSpec = { ...flat, name: 'g', outputName: 'g.update', initial: 1 };
    const pool = new SlotPool([flat, gain], 2, 64);
    const h = pool.acquire()!;
    assert.deepEqual(Array.from(pool.rowView('g', h)), [1, 1, 1, 1]);
    assert.deepEqual(Array.from(pool.rowView('f', h)), [0, 0, 0, 0]);
    pool.writeBack('g', h, Float32Array.from([2, 1, 2, 1]), 0, 1, 1, 0, 0);
    pool.writeBack('f', h, Float32Array.from([5, 5, 5, 5]), 0, 1, 1, 0, 0);
    pool.release(h);
    const again = pool.acquire()!;
    assert.deepEqual(Array.from(pool.rowView('g', again)), [1, 1, 1, 1], 'not what the previous row left');
    assert.deepEqual(Array.from(pool.rowView('f', again)), [0, 0, 0, 0]);
  });

  it('refuses stale handles and reports free slots', () => {
    const pool = new SlotPool([kv], 1, 64);
    const h = pool.acquire()!;
    assert.equal(pool.acquire(), null);
    pool.release(h);
    assert.throws(() => pool.release(h), /not live/);
    assert.equal(pool.free, 1);
  });
});
