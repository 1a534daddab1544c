/**
 * Runs the real EngineCore in-process (real ORT sessions, no worker) so tests can tap raw logits.
 * The worker path is covered separately by tests that go through EngineClient.
 */
import assert from 'node:assert/strict';
import { EngineCore, type EngineModel } from '../../src/engine/engine-core.js';
import { EngineOptionsSchema, type EngineOptionsInput } from '../../src/engine/engine-options.js';
import { GREEDY_DEFAULTS } from '../../src/engine/sampling/defaults.js';
import type { EngineEvent, GenerationRequest, SamplingParams } from '../../src/engine/types.js';

export interface RunResult {
  tokenIds: number[];
  text: string;
  events: EngineEvent[];
  finish: Extract<EngineEvent, { type: 'finish' }> | null;
  error: Extract<EngineEvent, { type: 'error' }> | null;
  /** Copies of raw logits by sequence position. */
  logits: Map<number, Float32Array>;
}

export function request(id: string, promptIds: number[], sampling: Partial<SamplingParams> = {}, calibration: Record<string, unknown> = {}): GenerationRequest {
  return { id, promptIds, sampling: { ...GREEDY_DEFAULTS, ...sampling }, calibration };
}

export class InProcessEngine {
  readonly core: EngineCore;
  private readonly results = new Map<string, RunResult>();

  constructor(model: EngineModel, options: EngineOptionsInput = {}, private readonly keepLogits = false) {
    this.core = new EngineCore(model, EngineOptionsSchema.parse(options), (events) => {
      for (const e of events) {
        const r = this.results.get(e.id)!;
        r.events.push(e);
        if (e.type === 'tokens') {
          r.tokenIds.push(...e.tokenIds);
          r.text += e.text;
        } else if (e.type === 'finish') r.finish = e;
        else if (e.type === 'error') r.error = e;
      }
    }, {
      onLogits: (id, position, logits) => {
        if (this.keepLogits) this.results.get(id)?.logits.set(position, Float32Array.from(logits));
      },
    });
  }

  submit(req: GenerationRequest): RunResult {
    const r: RunResult = { tokenIds: [], text: '', events: [], finish: null, error: null, logits: new Map() };
    this.results.set(req.id, r);
    this.core.submit(req);
    return r;
  }

  /** Steps until every submitted request has finished; `between` runs after each step. */
  async drain(between?: (stepIndex: number) => void): Promise<void> {
    for (let i = 0; this.core.hasWork; i++) {
      await this.core.step();
      between?.(i);
    }
  }

  async run(req: GenerationRequest): Promise<RunResult> {
    const r = this.submit(req);
    await this.drain();
    return r;
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Two runs gave the same tokens and bit for bit the same logits at every position. */
export function assertBitIdentical(a: RunResult, b: RunResult): void {
  assert.deepEqual(b.tokenIds, a.tokenIds);
  assert.equal(b.logits.size, a.logits.size);
  for (const [pos, logits] of a.logits) {
    const other = b.logits.get(pos)!;
    const firstDiff = logits.findIndex((v, i) => !Object.is(v, other[i]));
    assert.equal(firstDiff, -1, `position ${pos}: logits differ at vocab index ${firstDiff}`);
  }
}
