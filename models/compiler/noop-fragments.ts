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
      const { g } = ctx;
      const scale = ctx.rowInput('noop.scale', 'float32', [], 1);
      // [B] → [B,1,1(,1)] so it broadcasts over [B,T,D] and [B,H,T,K] alike.
      const trailing = hook === 'hook_resid_pre' ? [1, 1] : [1, 1, 1];
      return g.op('Mul', [x, g.op('Reshape', [scale, g.constInt64([-1, ...trailing])])]);
    },
  }));
}
