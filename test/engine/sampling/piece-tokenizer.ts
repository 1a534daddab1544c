import type { Tokenizer } from '../../../models/tokenizers/tokenizer.js';

export const BOS = 1;
export const EOS = 2;

const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;
const BYTE_ESCAPE = /<0x([0-9A-F]{2})>/g;
const utf8 = new TextEncoder();
const lenient = new TextDecoder('utf-8', { fatal: false });

/**
 * A piece-table tokenizer with llama2.c decode semantics: pieces are concatenated as bytes and decoded
 * leniently (so split multi-byte characters become U+FFFD), `▁` is a space, `<0xHH>` is one raw byte,
 * and a text piece's leading space is stripped right after BOS, whether BOS itself is skipped or not.
 * Unlike SentencePiece it also allows `<0xHH>` inside a text piece, to model byte-level BPE tokens that
 * end part-way into a character.
 */
export class PieceTokenizer implements Tokenizer {
  readonly bosId = BOS;
  readonly stopIds: readonly number[] = [EOS];
  private readonly bytes: Uint8Array[];
  private readonly isByte: boolean[];

  constructor(private readonly pieces: readonly string[]) {
    if (pieces[BOS] !== '<s>' || pieces[EOS] !== '</s>') throw new Error('pieces 1 and 2 must be <s> and </s>');
    this.isByte = pieces.map((p) => BYTE_PIECE.test(p));
    this.bytes = pieces.map((p) => pieceBytes(p));
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  idOf(piece: string): number {
    const id = this.pieces.indexOf(piece);
    if (id < 0) throw new Error(`no piece ${piece}`);
    return id;
  }

  ids(...pieces: string[]): number[] {
    return pieces.map((p) => this.idOf(p));
  }

  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    const out: number[] = opts.addBos ? [BOS] : [];
    // SentencePiece's dummy prefix, which decode strips again after BOS.
    const s = '▁' + text.replaceAll(' ', '▁');
    let i = 0;
    while (i < s.length) {
      let best = -1;
      let bestLen = 0;
      this.pieces.forEach((p, id) => {
        if (id <= EOS || this.isByte[id] || p.includes('<0x')) return;
        if (p.length > bestLen && s.startsWith(p, i)) {
          best = id;
          bestLen = p.length;
        }
      });
      if (best >= 0) {
        out.push(best);
        i += bestLen;
        continue;
      }
      const cp = String.fromCodePoint(s.codePointAt(i)!);
      for (const b of utf8.encode(cp)) out.push(this.idOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
      i += cp.length;
    }
    return out;
  }

  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= this.pieces.length) throw new RangeError(`token ${id} outside the vocabulary`);
      if (opts.skipSpecial && (id === BOS || id === EOS)) continue;
      let b = this.bytes[id]!;
      if (i > 0 && ids[i - 1] === BOS && !this.isByte[id] && b[0] === 0x20) b = b.subarray(1);
      chunks.push(b);
    }
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let o = 0;
    for (const c of chunks) {
      all.set(c, o);
      o += c.length;
    }
    return lenient.decode(all);
  }

  idToPiece(id: number): string {
    return this.pieces[id]!;
  }
}

function pieceBytes(piece: string): Uint8Array {
  const out: number[] = [];
  let last = 0;
  for (const m of piece.matchAll(BYTE_ESCAPE)) {
    out.push(...utf8.encode(piece.slice(last, m.index).replaceAll('▁', ' ')));
    out.push(parseInt(m[1]!, 16));
    last = m.index + m[0].length;
  }
  out.push(...utf8.encode(piece.slice(last).replaceAll('▁', ' ')));
  return Uint8Array.from(out);
}

/** The vocabulary most tests share. */
export const PIECES = [
  '<unk>', '<s>', '</s>',
  '▁Hello', '▁world', '!', '▁ST', 'OP', 'S', 'T', 'O', 'P', '▁',
  '<0xE4>', '<0xBD>', '<0xA0>', '<0xC3>', '<0xA9>',
  'a', 'b', 'c', 'ab', 'ca', 'bc', '▁the', 'end', 'x<0xE4>', 'OP<0xE4>', '▁Once', '▁upon',
];

export function pieceTokenizer(): PieceTokenizer {
  return new PieceTokenizer(PIECES);
}
