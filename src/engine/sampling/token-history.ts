/**
 * What a logits processor may know about a row: the tokens so far, with the aggregates that penalties
 * need kept up to date as tokens arrive, so a penalty costs O(distinct tokens) per step rather than a
 * rescan of the whole sequence.
 */
export interface RowTokenHistory {
  readonly promptIds: readonly number[];
  readonly outputIds: readonly number[];
  /** Generated token id -> number of times it was generated. Prompt tokens are not counted. */
  readonly outputCounts: ReadonlyMap<number, number>;
  /** Distinct ids in the prompt or the output (what the repetition penalty applies to). */
  readonly seenIds: ReadonlySet<number>;
}

export class TokenHistory implements RowTokenHistory {
  readonly promptIds: readonly number[];
  private readonly output: number[] = [];
  private readonly counts = new Map<number, number>();
  private readonly seen: Set<number>;

  /** Keeps a reference to `promptIds`: the request owns it and must not mutate it afterwards. */
  constructor(promptIds: readonly number[]) {
    this.promptIds = promptIds;
    this.seen = new Set(promptIds);
  }

  get outputIds(): readonly number[] {
    return this.output;
  }

  get outputCounts(): ReadonlyMap<number, number> {
    return this.counts;
  }

  get seenIds(): ReadonlySet<number> {
    return this.seen;
  }

  append(tokenId: number): void {
    this.output.push(tokenId);
    this.counts.set(tokenId, (this.counts.get(tokenId) ?? 0) + 1);
    this.seen.add(tokenId);
  }
}
