/** What the engine and the API need from any tokenizer, whatever its file format. */
export interface Tokenizer {
  readonly vocabSize: number;
  /** Prepended when `addBos` is set; null when the model has none. */
  readonly bosId: number | null;
  /** Token ids that end a generation by default (EOS, and for llama2.c models also BOS, as run.c does). */
  readonly stopIds: readonly number[];
  /**
   * `continuation`: the text continues a sequence after a special token (an image placeholder), so a
   * sentencepiece-style dummy-prefix space is not added (llama2.c tokenizers; HF tokenizers encode
   * such text whole, with the placeholder as an added token).
   */
  encode(text: string, opts?: { addBos?: boolean; continuation?: boolean }): number[];
  /** Decodes a whole sequence. `skipSpecial` drops control tokens such as BOS/EOS. */
  decode(ids: readonly number[], opts?: { skipSpecial?: boolean }): string;
  /** The vocabulary string of one token id, for logprob tables (e.g. "▁the", "<0x0A>"). */
  idToPiece(id: number): string;
}
