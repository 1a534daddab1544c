/**
 * Per-row state buffers (the KV cache and calibrator states), owned by JS and fed to ORT without
 * copying.
 *
 * Each state has one Float32Array laid out `[slot, ...dims]`, with the position axis sized to the
 * pool's current capacity. Rows that are decoding are kept packed in slots `0..decoding-1`, and
 * inside that region grouped in contiguous runs by the graph they run in, so each group's decode
 * batch is a zero-copy view of every buffer. Rows that are still prefilling live in slots after
 * that region and are fed one at a time (or with no past at all on their first chunk). Joining or
 * leaving a group moves at most one row per later group (the first or last of each run).
 *
 * Attention cost tracks the capacity that is fed, not the positions in use (onnx-notes §5.2), so the
 * capacity follows the longest live row in power-of-two buckets; re-laying out copies only the
 * positions in use, which is rare and proportional to work already done.
 */
import { KEYS_AXIS, type RowStateSpec } from '../../models/compiler/hooks.js';

/** A row's place in the pool. The pool updates `index` when it moves the row. */
export interface SlotHandle {
  index: number;
  /** Positions filled so far (the row's sequence length in the cache). */
  used: number;
  /** The decode group (graph) the row belongs to once promoted. */
  group: string | null;
}

/** A contiguous run of decoding rows that share a graph. */
export interface DecodeRun {
  group: string;
  start: number;
  count: number;
}

interface StateLayout {
  spec: RowStateSpec;
  /** Product of dims before the position axis (1 when there is none). */
  outer: number;
  /** Product of dims after the position axis (all dims when there is none). */
  inner: number;
  hasKeys: boolean;
  buffer: Float32Array;
  /** One row of room for swaps, kept with the buffer so a promotion allocates nothing. */
  scratch: Float32Array;
}

export class SlotPool {
  private layouts: StateLayout[];
  private readonly byName: Map<string, StateLayout>;
  private readonly slots: (SlotHandle | null)[];
  private decodingCount = 0;
  private cap: number;

  constructor(
    specs: readonly RowStateSpec[],
    readonly maxSlots: number,
    readonly maxCapacity: number,
    private readonly minCapacity = 64,
  ) {
    this.cap = Math.min(minCapacity, maxCapacity);
    this.slots = new Array<SlotHandle | null>(maxSlots).fill(null);
    this.layouts = specs.map((spec) => {
      const k = spec.dims.indexOf(KEYS_AXIS);
      const nums = (ds: RowStateSpec['dims']) => ds.reduce<number>((a, d) => a * (d === KEYS_AXIS ? 1 : d), 1);
      const hasKeys = k >= 0;
      return {
        spec,
        hasKeys,
        outer: hasKeys ? nums(spec.dims.slice(0, k)) : 1,
        inner: hasKeys ? nums(spec.dims.slice(k + 1)) : nums(spec.dims),
        buffer: new Float32Array(0),
        scratch: new Float32Array(0),
      };
    });
    this.byName = new Map(this.layouts.map((l) => [l.spec.name, l]));
    this.allocate(this.cap);
  }

  get capacity(): number {
    return this.cap;
  }
  get decoding(): number {
    return this.decodingCount;
  }
  get inUse(): number {
    return this.slots.reduce((n, s) => n + (s ? 1 : 0), 0);
  }
  get free(): number {
    return this.maxSlots - this.inUse;
  }

  private rowFloats(l: StateLayout, cap = this.cap): number {
    return l.hasKeys ? l.outer * cap * l.inner : l.inner;
  }

  private allocate(cap: number): void {
    for (const l of this.layouts) {
      const fresh = new Float32Array(this.maxSlots * this.rowFloats(l, cap));
      if (l.buffer.length) {
        for (const s of this.slots) if (s) this.copyRow(l, l.buffer, this.cap, s.index, fresh, cap, s.index, s.used);
      }
      l.buffer = fresh;
      l.scratch = new Float32Array(this.rowFloats(l, cap));
    }
    this.cap = cap;
  }

  /** Copies the first `used` positions of one row between buffers of possibly different capacity. */
  private copyRow(l: StateLayout, src: Float32Array, srcCap: number, from: number, dst: Float32Array, dstCap: number, to: number, used: number): void {
    if (!l.hasKeys) {
      dst.set(src.subarray(from * l.inner, (from + 1) * l.inner), to * l.inner);
      return;
    }
    const n = Math.min(used, srcCap, dstCap) * l.inner;
    for (let o = 0; o < l.outer; o++) {
      const s = (from * l.outer + o) * srcCap * l.inner;
      const d = (to * l.outer + o) * dstCap * l.inner;
      if (src === dst) dst.copyWithin(d, s, s + n);
      else dst.set(src.subarray(s, s + n), d);
    }
  }

  /** Makes sure every live row can grow to `needed` positions; may re-lay out the buffers. */
  ensureCapacity(needed: number): void {
    if (needed > this.maxCapacity) throw new Error(`capacity ${needed} exceeds the pool maximum ${this.maxCapacity}`);
    if (needed <= this.cap) return;
    let cap = this.cap;
    while (cap < needed) cap *= 2;
    this.allocate(Math.min(cap, this.maxCapacity));
  }

  /**
   * Gives back capacity when every live row has become short (hysteresis: a quarter). Capacities
   * stay on the ladder growth uses (minCapacity·2^k, and the maximum at the top): halving a maximum
   * that is not on it would give fractional capacities (258 → 129 → 64.5), which are not dims.
   */
  shrinkToFit(): void {
    const longest = this.slots.reduce((m, s) => Math.max(m, s ? s.used + 1 : 0), 0);
    let cap = this.cap;
    for (;;) {
      const lower = this.bucketBelow(cap);
      if (lower >= cap || longest > lower / 2) break;
      cap = lower;
    }
    if (cap < this.cap) this.allocate(cap);
  }

  /** The largest ladder capacity below `cap` (or minCapacity when there is none). */
  private bucketBelow(cap: number): number {
    let p = this.minCapacity;
    while (p * 2 < cap) p *= 2;
    return p;
  }

  /** Reserves a slot outside the decoding region for a new row; null when full. */
  acquire(): SlotHandle | null {
    for (let i = this.decodingCount; i < this.maxSlots; i++) {
      if (!this.slots[i]) {
        const h: SlotHandle = { index: i, used: 0, group: null };
        this.slots[i] = h;
        // States without a position axis are read whole on the first step: start them at their
        // initial value (0 unless declared), not at whatever the slot's previous row left.
        // (Positional states are only read where filled.)
        for (const l of this.layouts) if (!l.hasKeys) l.buffer.fill(l.spec.initial ?? 0, i * l.inner, (i + 1) * l.inner);
        return h;
      }
    }
    return null;
  }

  /** The decoding region as runs of one group each, in slot order. */
  runs(): DecodeRun[] {
    const out: DecodeRun[] = [];
    for (let i = 0; i < this.decodingCount; i++) {
      const g = this.slots[i]!.group!;
      const last = out[out.length - 1];
      if (last && last.group === g) last.count++;
      else out.push({ group: g, start: i, count: 1 });
    }
    return out;
  }

  /**
   * Moves a row that finished prefilling into the packed decoding region, at the end of its group's
   * run (a new group's run goes last). The row first takes the region's next slot; then it trades
   * places with the first row of each later run, from the last run back, which keeps every run
   * contiguous.
   */
  promote(h: SlotHandle, group: string): void {
    this.assertOwned(h);
    const end = this.decodingCount;
    if (h.index < end) throw new Error('row is already decoding');
    const runs = this.runs();
    if (h.index !== end) {
      const occupant = this.slots[end];
      if (occupant) this.swap(h, occupant);
      else this.moveTo(h, end);
    }
    h.group = group;
    this.decodingCount++;
    const own = runs.findIndex((r) => r.group === group);
    if (own < 0) return;
    for (let r = runs.length - 1; r > own; r--) this.swap(h, this.slots[runs[r]!.start]!);
  }

  /**
   * Frees a row's slot at once. Inside the decoding region the hole moves to the region's end: the
   * last row of the row's own run fills it, then the last row of each later run fills the hole its
   * run's shift left behind.
   */
  release(h: SlotHandle): void {
    this.assertOwned(h);
    const i = h.index;
    const runs = i < this.decodingCount ? this.runs() : [];
    this.slots[i] = null;
    h.index = -1;
    if (!runs.length) return;
    let hole = i;
    for (let r = runs.findIndex((run) => i >= run.start && i < run.start + run.count); r < runs.length; r++) {
      const last = runs[r]!.start + runs[r]!.count - 1;
      if (last !== hole) this.moveTo(this.slots[last]!, hole);
      hole = last;
    }
    this.decodingCount--;
  }

  private assertOwned(h: SlotHandle): void {
    if (h.index < 0 || this.slots[h.index] !== h) throw new Error('slot handle is not live in this pool');
  }

  private moveTo(h: SlotHandle, to: number): void {
    for (const l of this.layouts) this.copyRow(l, l.buffer, this.cap, h.index, l.buffer, this.cap, to, h.used);
    this.slots[h.index] = null;
    this.slots[to] = h;
    h.index = to;
  }

  private swap(a: SlotHandle, b: SlotHandle): void {
    for (const l of this.layouts) {
      const scratch = l.scratch;
      this.copyRow(l, l.buffer, this.cap, a.index, scratch, this.cap, 0, a.used);
      this.copyRow(l, l.buffer, this.cap, b.index, l.buffer, this.cap, a.index, b.used);
      this.copyRow(l, scratch, this.cap, 0, l.buffer, this.cap, b.index, a.used);
    }
    const ai = a.index;
    a.index = b.index;
    b.index = ai;
    this.slots[a.index] = a;
    this.slots[b.index] = b;
  }

  /** Dims of a state tensor for `rows` rows at capacity `cap`. */
  dims(spec: RowStateSpec, rows: number, cap = this.cap): number[] {
    return [rows, ...spec.dims.map((d) => (d === KEYS_AXIS ? cap : d))];
  }

  private layoutOf(name: string): StateLayout {
    const l = this.byName.get(name);
    if (!l) throw new Error(`unknown state '${name}'`);
    return l;
  }

  /** Whether a state has a position axis (else it is read whole every step). */
  hasPositions(name: string): boolean {
    return this.layoutOf(name).hasKeys;
  }

  /** A copy of several rows' state, for rows that are not packed together (fresh prefills). */
  gather(name: string, handles: readonly SlotHandle[]): Float32Array {
    const l = this.layoutOf(name);
    const n = this.rowFloats(l);
    const out = new Float32Array(handles.length * n);
    handles.forEach((h, b) => out.set(l.buffer.subarray(h.index * n, (h.index + 1) * n), b * n));
    return out;
  }

  /** Decoding rows `start..start+rows-1` (one group's run), as one zero-copy view. */
  batchView(name: string, start: number, rows: number): Float32Array {
    const l = this.layoutOf(name);
    const n = this.rowFloats(l);
    return l.buffer.subarray(start * n, (start + rows) * n);
  }

  /** One row's state, as a zero-copy view. */
  rowView(name: string, h: SlotHandle): Float32Array {
    const l = this.layoutOf(name);
    const n = this.rowFloats(l);
    return l.buffer.subarray(h.index * n, (h.index + 1) * n);
  }

  /**
   * Writes one row of a graph's state output back into the row's slot.
   * @param out the whole output tensor's data, `[batch, ...]`
   * @param b the row's index in that batch
   * @param newTokens the batch's (padded) new-token count T
   * @param realTokens this row's real new tokens (≤ T)
   * @param fedCap the past capacity fed this step (0 on a fresh prefill)
   * @param past positions in the cache before this step
   */
  writeBack(name: string, h: SlotHandle, out: Float32Array, b: number, newTokens: number, realTokens: number, fedCap: number, past: number): void {
    const l = this.layoutOf(name);
    const buf = l.buffer;
    if (!l.hasKeys) {
      buf.set(out.subarray(b * l.inner, (b + 1) * l.inner), h.index * l.inner);
      return;
    }
    const inner = l.inner;
    const rowBase = h.index * l.outer * this.cap * inner;
    if (l.spec.update === 'append') {
      for (let o = 0; o < l.outer; o++) {
        const src = (b * l.outer + o) * newTokens * inner;
        buf.set(out.subarray(src, src + realTokens * inner), rowBase + (o * this.cap + past) * inner);
      }
      return;
    }
    // 'replace': the output covers [fed past | new] keys.
    const keys = fedCap + newTokens;
    for (let o = 0; o < l.outer; o++) {
      const src = (b * l.outer + o) * keys * inner;
      const dst = rowBase + o * this.cap * inner;
      if (fedCap > 0) buf.set(out.subarray(src, src + past * inner), dst);
      buf.set(out.subarray(src + fedCap * inner, src + (fedCap + realTokens) * inner), dst + past * inner);
    }
  }
}
