/**
 * ACT in float64, written straight from shared/specs/act.md, for parity tests:
 * - `officialPrefill`: the official code's single-forward calibration of one head's N×N map;
 * - `ActReference`: attune's running-sum semantics as a ReferenceDecoder hook (prefill = official,
 *   decode = running column sums, no [0,0] override, rows without non-sink mass left unchanged).
 */
import type { HookFn } from './reference-forward.js';
import { SMALLEST_NORMAL_F32 } from '../../calibrators/act.js';

/** S from per-key scores: keys over τ, minus the first detected one (official `indices[1:]`). */
export function sinksFromScores(score: ArrayLike<number>, tau: number): number[] {
  const d: number[] = [];
  for (let j = 0; j < score.length; j++) if (score[j]! > tau) d.push(j);
  return d.slice(1);
}

/** Redistributes one attention row in place: sinks ×β, freed mass to non-sinks by original share. */
export function redistributeRow(row: Float64Array | number[], sinks: ReadonlySet<number>, beta: number): void {
  let sinkMass = 0, rest = 0;
  for (let k = 0; k < row.length; k++) (sinks.has(k) ? (sinkMass += row[k]!) : (rest += row[k]!));
  // The 0/0 guard: attune leaves rows without non-sink mass unchanged, and counts mass below the
  // smallest normal float32, or less, as none (fp32 cannot scale it up without overflowing).
  if (rest <= SMALLEST_NORMAL_F32) return;
  const freed = (1 - beta) * sinkMass;
  for (let k = 0; k < row.length; k++) row[k] = sinks.has(k) ? beta * row[k]! : row[k]! + (freed * row[k]!) / rest;
}

/** The official prefill: score[j] = Σ_i A[i,j] / (N − j), every row calibrated. */
export function officialPrefill(A: number[][], beta: number, tau: number): { out: number[][]; sinks: number[] } {
  const N = A.length;
  const score = Array.from({ length: N }, (_, j) => A.reduce((s, r) => s + r[j]!, 0) / (N - j));
  const sinks = sinksFromScores(score, tau);
  const set = new Set(sinks);
  const out = A.map((r) => {
    const row = [...r];
    redistributeRow(row, set, beta);
    return row;
  });
  return { out, sinks };
}

export interface ActRefConfig {
  beta: number;
  threshold: number;
  heads: Record<number, number[]>;
}

/** Running-sum ACT for a ReferenceDecoder; records each step's sink sets per layer and head. */
export class ActReference {
  private readonly colsums = new Map<string, Float64Array>();
  /** After each hook call: layer → head → S (positions). */
  readonly lastSinks = new Map<number, Map<number, number[]>>();
  /** Every original (uncalibrated) attention row seen, per layer:head, for full recomputation. */
  readonly originalRows = new Map<string, Float64Array[]>();

  constructor(readonly cfg: ActRefConfig, private readonly capacity: number) {}

  readonly hook: HookFn = (rows, ctx) => {
    const heads = this.cfg.heads[ctx.layer];
    if (ctx.head === undefined || !heads?.includes(ctx.head)) return;
    const key = `${ctx.layer}:${ctx.head}`;
    let c = this.colsums.get(key);
    if (!c) this.colsums.set(key, (c = new Float64Array(this.capacity)));
    const kept = this.originalRows.get(key) ?? [];
    for (const r of rows) {
      kept.push(Float64Array.from(r));
      for (let j = 0; j < r.length; j++) c[j]! += r[j]!;
    }
    this.originalRows.set(key, kept);
    const n = ctx.keyCount;
    const score = Array.from({ length: n }, (_, j) => c![j]! / (n - j));
    const sinks = sinksFromScores(score, this.cfg.threshold);
    if (!this.lastSinks.has(ctx.layer)) this.lastSinks.set(ctx.layer, new Map());
    this.lastSinks.get(ctx.layer)!.set(ctx.head, sinks);
    const set = new Set(sinks);
    for (const r of rows) redistributeRow(r, set, this.cfg.beta);
  };
}
