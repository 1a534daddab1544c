/**
 * A no-op fragment at every hook point: multiplies the hook tensor by a per-row input fed 1.0.
 * x·1 is exact in IEEE arithmetic, so the output must stay bit-identical to the plain graph, while
 * the graph still pays for real ops and real inputs. Used by the identity test and the benchmark
 * that prices the hook machinery.
 */
import { HOOK_KINDS, type HookFragment } from './hooks.js';

export const NOOP_OWNER = 'noop';

export function noopFragments(): HookFragment[] {
  return HOOK_KINDS.map((hook) => ({
    owner: NOOP_OWNER,
    hook,
    build(x, ctx) {
      // Per-row scales shaped to broadcast directly ([B,1,1] over [B,T,D]; [B,1,1,1] over
      // [B,H,T,K]), so each hook costs exactly one op.
      const scale = hook === 'hook_resid_pre'
        ? ctx.rowInput('noop.scale_resid', 'float32', [1, 1], 1)
        : ctx.rowInput('noop.scale_attn', 'float32', [1, 1, 1], 1);
      return ctx.g.op('Mul', [x, scale]);
    },
  }));
}
