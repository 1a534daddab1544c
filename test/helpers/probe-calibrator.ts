/**
 * A test calibrator with a fragment of its own (an exact ×1 at every layer's hook_z, fed per row), so
 * tests have a second calibrator set to tell apart from ACT's without changing any result.
 */
import { z } from 'zod';
import type { Calibrator } from '../../calibrators/calibrator.js';

export const probe: Calibrator<Record<string, never>, null> = {
  id: 'probe',
  summary: 'test calibrator: multiplies hook_z by a per-row 1',
  schema: z.object({}).strict(),
  resolve: () => ({}),
  isActive: () => true,
  needsWholePrefill: () => false,
  fragments: () => [{ owner: 'probe', hook: 'attn.hook_z', build: (x, ctx) => ctx.g.op('Mul', [x, ctx.rowInput('probe.scale', 'float32', [1, 1, 1], 1)]) }],
  createMemo: () => null,
  writeInputs: (_c, _row, inputs) => inputs.set('probe.scale', 1),
  report: () => ({}),
};
