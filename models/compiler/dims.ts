/**
 * Symbolic dims of the decoder graph; per-row inputs and states are declared in these terms. Apart
 * from hooks.ts so the step-geometry table, which hooks.ts names in the fragment API, can use them.
 */
export const DIM = {
  batch: 'batch',
  queries: 'new_tokens',
  past: 'past_capacity',
  keys: 'total_keys',
  logitRows: 'logit_rows',
} as const;
