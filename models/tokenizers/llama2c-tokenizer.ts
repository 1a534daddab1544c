/**
 * The llama2.c `tokenizer.bin` format (e.g. `tok512.bin`) with the semantics of karpathy/llama2.c
 * `run.c`: the same ids for the same text, and the same text for the same ids.
 *
 * File layout: `uint32 max_token_length`, then per token `float32 score`, `int32 len`, `len` bytes.
 * The file does not store its own length, so the vocabulary size comes from the model.
 */
import { readFile } from 'node:fs/promises';
import type { Tokenizer } from './tokenizer.js';

const BOS = 1;
const EOS = 2;
/** run.c maps a byte that has no piece of its own to id `byte + 3` (pieces `<0x00>`…`<0xFF>`). */
const BYTE_FALLBACK_OFFSET = 3;
/** run.c starts its best-score search at this float, so pairs scoring at or below it never merge. */
const MERGE_FLOOR = Math.fround(-1e10);

const utf8 = new TextEncoder();
const utf8Lenient = new TextDecoder('utf-8', { fatal: false });

export class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId = BOS;
  /**
   * run.c stops generation only on BOS, which separates stories in the training data. EOS is added
   * because the Tokenizer contract treats it as a stop everywhere, and a llama2.c model that does emit
   * id 2 has ended its text all the same.
   */
  readonly stopIds: readonly number[] = [BOS, EOS];
  readonly maxTokenLength: number;

  private readonly pieces: string[];
  /** Pieces as byte strings (one char per byte), so lookups and concatenations are byte-exact like C's strcmp. */
  private readonly byteKeys: string[];
  private readonly decodeBytes: Uint8Array[];
  private readonly isBytePiece: boolean[];
  private readonly scores: Float32Array;
  private readonly idOf: Map<string, number>;
  private readonly spaceId: number | undefined;

  private constructor(maxTokenLength: number, raw: Uint8Array[], scores: Float32Array) {
    this.vocabSize = raw.length;
    this.maxTokenLength = maxTokenLength;
    this.scores = scores;
    this.pieces = raw.map((b) => utf8Lenient.decode(b));
    this.byteKeys = raw.map(bytesToKey);
    this.isBytePiece = this.pieces.map((p) => /^<0x[0-9A-Fa-f]{2}>$/.test(p));
    this.decodeBytes = raw.map((b, id) => (this.isBytePiece[id] ? Uint8Array.of(parseInt(this.pieces[id]!.slice(3, 5), 16)) : b));
    this.idOf = new Map();
    // run.c binary-searches a sorted copy, so duplicates resolve arbitrarily; the first id is our stable choice.
    this.byteKeys.forEach((k, id) => {
      if (!this.idOf.has(k)) this.idOf.set(k, id);
    });
    this.spaceId = this.idOf.get(' ');
  }

  static parse(bytes: Uint8Array, vocabSize: number): Llama2cTokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new Error(`llama2.c tokenizer: invalid vocab size ${vocabSize}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (what: string): never => {
      throw new Error(`llama2.c tokenizer: ${what} (the model expects ${vocabSize} tokens)`);
    };
    if (bytes.byteLength < 4) fail('file shorter than its header');
    const maxTokenLength = view.getUint32(0, true);
    const scores = new Float32Array(vocabSize);
    const raw: Uint8Array[] = [];
    let off = 4;
    for (let id = 0; id < vocabSize; id++) {
      if (off + 8 > bytes.byteLength) fail(`file ends at token ${id}`);
      scores[id] = view.getFloat32(off, true);
      const len = view.getInt32(off + 4, true);
      off += 8;
      if (len < 0 || off + len > bytes.byteLength) fail(`token ${id} has an invalid length ${len}`);
      raw.push(bytes.slice(off, off + len));
      off += len;
    }
    return new Llama2cTokenizer(maxTokenLength, raw, scores);
  }

  encode(text: string, opts: { addBos?: boolean; continuation?: boolean } = {}): number[] {
    const ids: number[] = [];
    if (opts.addBos) ids.push(BOS);
    const bytes = utf8.encode(text);
    // run.c looks " " up and would store -1 if it were missing; skipping the prefix is the safe reading.
    if (bytes.length > 0 && this.spaceId !== undefined && !opts.continuation) ids.push(this.spaceId);
    let i = 0;
    while (i < bytes.length) {
      // One codepoint: a lead byte plus continuation bytes, at most 4 bytes, exactly as run.c groups them.
      let end = i + 1;
      while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80 && end - i < 4) end++;
      const id = this.idOf.get(bytesToKey(bytes.subarray(i, end)));
      if (id !== undefined) ids.push(id);
      else for (let j = i; j < end; j++) ids.push(this.byteFallback(bytes[j]!));
      i = end;
    }
    return this.merge(ids);
  }

  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (opts.skipSpecial && (id === BOS || id === EOS)) {
        this.checkId(id);
        continue;
      }
      const b = this.pieceBytes(i > 0 ? ids[i - 1]! : null, id);
      parts.push(b);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return utf8Lenient.decode(out);
  }

  /**
   * The bytes run.c prints for `id` after `prevId` (null at the start of a sequence). Bytes rather than
   * text because a multi-byte character may be split over several byte-fallback tokens: streaming
   * callers should feed these to a stateful UTF-8 decoder.
   */
  pieceBytes(prevId: number | null, id: number): Uint8Array {
    this.checkId(id);
    const raw = this.decodeBytes[id]!;
    // The dummy-prefix space belongs to the encoding, not to the text, when a sequence starts after BOS.
    // run.c strips it from the stored piece before mapping `<0xXX>`, so a byte piece is never stripped.
    if (prevId === BOS && !this.isBytePiece[id] && raw[0] === 0x20) return raw.subarray(1);
    return raw;
  }

  idToPiece(id: number): string {
    this.checkId(id);
    return this.pieces[id]!;
  }

  score(id: number): number {
    this.checkId(id);
    return this.scores[id]!;
  }

  private byteFallback(byte: number): number {
    const id = byte + BYTE_FALLBACK_OFFSET;
    if (id >= this.vocabSize) throw new Error(`llama2.c tokenizer: byte 0x${byte.toString(16)} has no fallback piece in a ${this.vocabSize}-token vocabulary`);
    return id;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  /**
   * run.c repeatedly merges the adjacent pair with the highest score, leftmost on ties, rescanning the
   * whole sequence each time (quadratic). A heap ordered by (score desc, left position asc) over a
   * linked list picks the same pair at every step: positions keep their order, and a pair entry is
   * discarded when either side has changed since it was queued.
   */
  private merge(initial: number[]): number[] {
    const n = initial.length;
    if (n < 2) return initial;
    const id = Int32Array.from(initial);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const consider = (left: number) => {
      const right = next[left]!;
      if (right < 0) return;
      const merged = this.idOf.get(this.byteKeys[id[left]!]! + this.byteKeys[id[right]!]!);
      if (merged === undefined) return;
      const score = this.scores[merged]!;
      if (!(score > MERGE_FLOOR)) return;
      heap.push({ score, left, right, leftVersion: version[left]!, rightVersion: version[right]!, merged });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);

    for (let top = heap.pop(); top; top = heap.pop()) {
      const { left, right } = top;
      if (version[left] !== top.leftVersion || version[right] !== top.rightVersion || next[left] !== right) continue;
      id[left] = top.merged;
      version[left]!++;
      version[right]!++; // the right node is gone; its pending pairs must not fire
      const after = next[right]!;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      if (prev[left]! >= 0) consider(prev[left]!);
      consider(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(id[i]!);
    return out;
  }
}

interface PairEntry {
  score: number;
  left: number;
  right: number;
  leftVersion: number;
  rightVersion: number;
  merged: number;
}

/** Max-heap on score, then min on left position. */
class PairHeap {
  private readonly items: PairEntry[] = [];

  push(e: PairEntry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): PairEntry | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(x: PairEntry, y: PairEntry): boolean {
  return x.score > y.score || (x.score === y.score && x.left < y.left);
}

function bytesToKey(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

export async function loadLlama2cTokenizer(path: string, vocabSize: number): Promise<Llama2cTokenizer> {
  try {
    return Llama2cTokenizer.parse(await readFile(path), vocabSize);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
}
