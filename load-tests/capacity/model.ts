/**
 * The capacity model (docs/scaling.md): per-replica throughput and latency from measured figures,
 * then the replicas a target request rate needs and the queue depth per pod the HPA should hold.
 *
 * - Decode rate D(b) at batch b: linear between the measured batch sizes, flat beyond the largest
 *   (no gain is assumed that was not measured).
 * - Engine work of one request at batch b: w(b) = P / prefill + O / D(b) seconds.
 * - Serving efficiency η = measured load-test requests/s × w at that test's prompt, output and
 *   batch: what HTTP, SSE, prefill interleaving, growing contexts and a load generator on the same
 *   cores leave of the engine benchmark's rates. η scales every rate below.
 * - A replica at batch b serves λ(b) = η / w(b) requests/s; a step, and so the inter-token
 *   latency, takes b / (η D(b)); an unqueued request waits for its prefill and one step
 *   (the TTFT floor); each request queued ahead of it adds 1 / λ(b), the time for a slot to free.
 */
import type { ReplicaFigures } from './figures.js';

export interface Workload {
  /** Target request rate over the whole deployment. */
  rps: number;
  promptTokens: number;
  outputTokens: number;
}

export interface Targets {
  ttftSeconds: number;
  /** Optional bound on the inter-token latency. */
  itlSeconds?: number;
  /** Fraction of a replica's saturation rate to plan for (headroom for bursts and HPA lag). */
  utilisation: number;
  minReplicas: number;
  /** The largest --max-batch to consider. */
  maxBatch: number;
}

export interface ReplicaAt {
  batch: number;
  /** Saturation request rate of one replica. */
  requestsPerSecond: number;
  generatedTokensPerSecond: number;
  itlSeconds: number;
  ttftFloorSeconds: number;
  /** TTFT added by each request waiting ahead. */
  queueWaitPerRequestSeconds: number;
}

export interface Plan {
  efficiency: number;
  /** The largest batch that meets the latency targets, or null if none does. */
  replica: ReplicaAt | null;
  replicas: number | null;
  /** attune:num_requests_waiting per pod that keeps TTFT within target. */
  hpaWaitingTarget: number | null;
  notes: string[];
}

function measuredBatches(f: ReplicaFigures): [number, number][] {
  return Object.entries(f.engine.decodeTokensPerSecond)
    .map(([b, r]) => [Number(b), r] as [number, number])
    .sort((a, b) => a[0] - b[0]);
}

export function decodeRate(f: ReplicaFigures, batch: number): number {
  const points = measuredBatches(f);
  const last = points.at(-1)!;
  if (batch >= last[0]) return last[1];
  for (let i = 1; i < points.length; i++) {
    const [b0, r0] = points[i - 1]!;
    const [b1, r1] = points[i]!;
    if (batch <= b1) return r0 + ((r1 - r0) * (Math.max(batch, b0) - b0)) / (b1 - b0);
  }
  return points[0]![1];
}

/** Engine seconds of one request's prefill and decode at batch b. */
export function engineWork(f: ReplicaFigures, promptTokens: number, outputTokens: number, batch: number): number {
  return promptTokens / f.engine.prefillTokensPerSecond + outputTokens / decodeRate(f, batch);
}

export function servingEfficiency(f: ReplicaFigures): number {
  const { load } = f;
  const outputTokens = load.generatedTokensPerSecond / load.requestsPerSecond;
  const batch = Math.min(load.connections, f.maxBatch);
  return load.requestsPerSecond * engineWork(f, load.promptTokensMean, outputTokens, batch);
}

export function replicaAt(f: ReplicaFigures, efficiency: number, w: Pick<Workload, 'promptTokens' | 'outputTokens'>, batch: number): ReplicaAt {
  const requestsPerSecond = efficiency / engineWork(f, w.promptTokens, w.outputTokens, batch);
  const itlSeconds = batch / (efficiency * decodeRate(f, batch));
  return {
    batch,
    requestsPerSecond,
    generatedTokensPerSecond: requestsPerSecond * w.outputTokens,
    itlSeconds,
    ttftFloorSeconds: w.promptTokens / (efficiency * f.engine.prefillTokensPerSecond) + itlSeconds,
    queueWaitPerRequestSeconds: 1 / requestsPerSecond,
  };
}

export function plan(f: ReplicaFigures, w: Workload, t: Targets): Plan {
  const efficiency = servingEfficiency(f);
  const notes: string[] = [];
  let replica: ReplicaAt | null = null;
  for (let b = t.maxBatch; b >= 1 && !replica; b--) {
    const r = replicaAt(f, efficiency, w, b);
    if (r.ttftFloorSeconds <= t.ttftSeconds && (t.itlSeconds === undefined || r.itlSeconds <= t.itlSeconds)) replica = r;
  }
  if (!replica) {
    const one = replicaAt(f, efficiency, w, 1);
    notes.push(
      `no batch size meets the targets: even at batch 1 the TTFT floor is ${ms(one.ttftFloorSeconds)} and the inter-token latency ${ms(one.itlSeconds)}; ` +
        'shorter prompts or faster replicas (more threads, a GPU) are needed, not more replicas',
    );
    return { efficiency, replica: null, replicas: null, hpaWaitingTarget: null, notes };
  }
  if (replica.batch < t.maxBatch) notes.push(`the latency targets need --max-batch ${replica.batch} (smaller steps), not ${t.maxBatch}`);
  const replicas = Math.max(t.minReplicas, Math.ceil(w.rps / (t.utilisation * replica.requestsPerSecond)));
  // Rounded down to a tenth: the HPA's averageValue takes fractions ("500m").
  const hpaWaitingTarget = Math.floor(((t.ttftSeconds - replica.ttftFloorSeconds) / replica.queueWaitPerRequestSeconds) * 10) / 10;
  if (hpaWaitingTarget < 0.1) notes.push('the TTFT target leaves no room for a queue: scaling on queue depth cannot hold it; plan a lower --utilisation');
  return { efficiency, replica, replicas, hpaWaitingTarget, notes };
}

export function ms(seconds: number): string {
  return `${(seconds * 1000).toFixed(1)} ms`;
}
