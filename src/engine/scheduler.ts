/**
 * Scheduling decisions for one engine step. These functions only decide (as vLLM's scheduler does);
 * EngineCore carries the decisions out. A step: admit waiting requests whose every slot is free,
 * encode the images of rows that need them, run at most one prefill call (a batch of fresh prompts
 * that share a graph, or the next chunk of one long prompt), then one decode call per graph group.
 */
import type { EngineOptions } from './engine-options.js';
import type { MainRow, RequestUnit, Row } from './sequences.js';

/** Waiting requests to admit now, in arrival order: a request that does not fit blocks the queue behind it. */
export function pickAdmissions(waiting: readonly RequestUnit[], freeSlots: number): RequestUnit[] {
  const out: RequestUnit[] = [];
  let free = freeSlots;
  for (const unit of waiting) {
    if (unit.slotsNeeded > free) break;
    free -= unit.slotsNeeded;
    out.push(unit);
  }
  return out;
}

/** Rows whose images to encode in this step's encoder calls, up to `maxImages` images in all (at least one row). */
export function pickEncodes(rows: Iterable<MainRow>, maxImages: number): MainRow[] {
  const out: MainRow[] = [];
  let images = 0;
  for (const r of rows) {
    if (r.phase !== 'encode') continue;
    const n = r.images.length;
    if (out.length && images + n > maxImages) break;
    out.push(r);
    images += n;
  }
  return out;
}

export interface PrefillItem {
  row: Row;
  tokens: number;
}

export interface PrefillPlan {
  items: PrefillItem[];
  /** One row continuing a chunked prompt with its own past (else fresh prompts with no past). */
  continuing: boolean;
  graphKey: string;
}

/** Prompt logprobs need logits at every position; rows that need them are batched apart from the rest. */
const wantsAllLogits = (r: Row): boolean => r.role === 'main' && (r as MainRow).promptLogprobs !== null;

/**
 * A continuing chunk of one long prompt, or a batch of fresh prompts of one graph that fits the token
 * budget. A request's companions are prefilled in the same call as its main row, whole.
 */
export function planPrefill(prefilling: readonly Row[], options: Pick<EngineOptions, 'prefillChunk' | 'maxPrefillTokensPerStep'>): PrefillPlan | null {
  if (!prefilling.length) return null;
  const chunkOf = (r: Row) => {
    const left = r.promptIds.length - r.prefilled;
    const whole = r.unit.wholePrefill || r.unit.companions.length > 0;
    return whole ? left : Math.min(left, options.prefillChunk);
  };
  const continuing = prefilling.find((r) => r.prefilled > 0);
  if (continuing) return { items: [{ row: continuing, tokens: chunkOf(continuing) }], continuing: true, graphKey: continuing.unit.graphKey };

  // Companions come with their main row (which may still be encoding its images): never on their own.
  const leaders = prefilling.filter((r) => r.role !== 'companion');
  if (!leaders.length) return null;
  const first = leaders[0]!;
  const graphKey = first.unit.graphKey;
  const allLogits = wantsAllLogits(first);
  const items: PrefillItem[] = [];
  let longest = 0;
  for (const r of leaders) {
    if (r.unit.graphKey !== graphKey || wantsAllLogits(r) !== allLogits) continue;
    const group = r.role === 'main' ? [r, ...r.unit.companions] : [r];
    const tokens = group.map(chunkOf);
    const widest = Math.max(longest, ...tokens);
    if (items.length && widest * (items.length + group.length) > options.maxPrefillTokensPerStep) break;
    group.forEach((row, i) => items.push({ row, tokens: tokens[i]! }));
    longest = widest;
  }
  return { items, continuing: false, graphKey };
}
