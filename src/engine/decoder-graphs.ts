/**
 * The compiled decoder graphs of one model, as the engine sees them: a session per set of active
 * calibrators (the empty set is the plain graph). Rows whose sets map to the same graph can share a
 * forward call.
 */
import type { RowStateSpec } from '../../models/compiler/hooks.js';
import type { DecoderSession } from './ort-session.js';

export interface DecoderGraphs {
  /** The graph for a set of calibrator ids (registry order); `[]` is the plain graph. */
  sessionFor(ids: readonly string[]): Promise<DecoderSession>;
  /** Names the graph `sessionFor(ids)` returns: rows with equal keys run in one call. */
  keyFor(ids: readonly string[]): string;
  /** Every state any graph of the model declares (the KV cache first): the slot pool holds them all. */
  readonly states: readonly RowStateSpec[];
  /** The execution provider the sessions run on. */
  readonly provider: string;
}

/**
 * Two graphs: every calibrator's fragments in one, none in the other (`plainFastPath`; without it
 * every row runs the calibrated graph, with identity inputs where its calibrators are off).
 */
export function twoGraphs(calibrated: DecoderSession | null, plain: DecoderSession | null): DecoderGraphs {
  const full = calibrated ?? plain;
  if (!full) throw new Error('engine needs at least one compiled graph');
  const pick = (ids: readonly string[]) => (ids.length > 0 || !plain ? calibrated : plain);
  return {
    async sessionFor(ids) {
      const s = pick(ids);
      if (!s) throw new Error(`no graph holds calibrators ${ids.join(', ')}`);
      return s;
    },
    keyFor: (ids) => (pick(ids) === plain ? 'plain' : 'calibrated'),
    states: full.graph.states,
    provider: full.provider,
  };
}
