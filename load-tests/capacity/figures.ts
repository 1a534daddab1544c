/**
 * Measured per-replica figures for the capacity model: what `npm run bench:engine` and `npm run
 * load` printed for one model on one machine shape. One file per (model, machine) pair; the
 * default is the project's own benchmark machine (stories260K-2vcpu.json, the README's figures).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const positive = z.number().positive();

export const ReplicaFiguresSchema = z.strictObject({
  description: z.string(),
  model: z.string(),
  /** Cores one replica had when measured: its CPU request. */
  cpuCores: positive,
  threads: z.number().int().positive(),
  /** The server's --max-batch in the load scenario. */
  maxBatch: z.number().int().positive(),
  engine: z.strictObject({
    source: z.string(),
    /** Aggregate decode tokens/s by batch size (keys are batch sizes). */
    decodeTokensPerSecond: z.record(z.string().regex(/^[1-9]\d*$/), positive).refine((r) => '1' in r, 'needs batch 1'),
    prefillTokensPerSecond: positive,
  }),
  load: z.strictObject({
    source: z.string(),
    connections: z.number().int().positive(),
    requestsPerSecond: positive,
    generatedTokensPerSecond: positive,
    promptTokensMean: positive,
    ttftP50Ms: positive,
  }),
});
export type ReplicaFigures = z.infer<typeof ReplicaFiguresSchema>;

export const DEFAULT_FIGURES = new URL('../../../load-tests/capacity/stories260K-2vcpu.json', import.meta.url);

export function readFigures(path: string | URL = DEFAULT_FIGURES): ReplicaFigures {
  return ReplicaFiguresSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
}
