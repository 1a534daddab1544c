/**
 * The engine loop that runs inside the worker thread: continuous batching over a slot pool, one
 * forward per phase per step, per-row sampling, calibrator feeds, and token events.
 *
 * Each step (1) admits waiting rows into free slots, (2) runs at most one prefill call (a batch of
 * fresh prompts with no past, or the next chunk of one long prompt), then (3) one decode call over
 * every decoding row. Long prompts are chunked, so streaming rows advance every step. Rows join and
 * leave only between steps; an abort takes effect at the next step boundary, and its slot is freed
 * there.
 */
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { DecoderConfig } from '../../models/checkpoint/decoder-weights.js';
import type { AnyCalibrator, RowInputWriter, RowStep } from '../../calibrators/calibrator.js';
import type { RowInputSpec } from '../../models/compiler/hooks.js';
import type { EngineEvent, GenerationRequest, TokenLogprobs } from './types.js';
import type { EngineOptions } from './engine-options.js';
import { OrtTensorCtor, type DecoderSession, type OrtTensor } from './ort-session.js';
import type { EngineGraphs } from './decoder-graphs.js';
import { SlotPool, type SlotHandle } from './slot-pool.js';
import { buildStepFeeds, logitRowIndex, stepShape, type StepRow, type StepShape } from './step-feeds.js';
import { RowSampler } from './sampling/row-sampler.js';
import { RowOutput } from './sampling/row-output.js';
import { computeTokenLogprobs } from './sampling/logprobs.js';
import { SamplingScratch } from './sampling/token-selection.js';

export interface EngineModel {
  name: string;
  config: DecoderConfig;
  tokenizer: Tokenizer;
  /** One graph per set of active calibrators (the empty set is the plain graph). */
  graphs: EngineGraphs;
  calibrators: ReadonlyMap<string, AnyCalibrator>;
}

interface ActiveCalibration {
  calibrator: AnyCalibrator;
  config: unknown;
  memo: unknown;
}

interface Row {
  req: GenerationRequest;
  slot: SlotHandle | null;
  phase: 'waiting' | 'prefill' | 'decode';
  /** Prompt tokens already in the cache. */
  prefilled: number;
  lastToken: number;
  calibrations: ActiveCalibration[];
  /** Requested with settings that change nothing (e.g. ACT with beta 1): reported as inactive. */
  idleCalibrators: string[];
  wholePrefill: boolean;
  sampler: RowSampler;
  output: RowOutput;
  promptLogprobs: (TokenLogprobs | null)[] | null;
  aborted: boolean;
  arrivedAt: number;
  scheduledAt: number | null;
  firstTokenAt: number | null;
}

export type EventSink = (events: EngineEvent[]) => void;

/** Optional taps for tests and diagnostics. */
export interface EngineObserver {
  /** Raw logits of one sequence position, before any processing; copy them if you keep them. */
  onLogits?(requestId: string, position: number, logits: Float32Array): void;
}

export class EngineCore {
  private readonly pool: SlotPool;
  private readonly rows = new Map<string, Row>();
  private readonly waiting: Row[] = [];
  private readonly events: EngineEvent[] = [];
  private readonly scratch = new SamplingScratch();
  private stepping = false;
  readonly maxModelLen: number;

  constructor(
    private readonly model: EngineModel,
    private readonly options: EngineOptions,
    private readonly sink: EventSink,
    private readonly observer: EngineObserver = {},
  ) {
    this.maxModelLen = Math.min(options.maxModelLen ?? model.config.maxSeqLen, model.config.maxSeqLen);
    this.pool = new SlotPool(model.graphs.states, options.maxBatch, this.maxModelLen);
  }

  get hasWork(): boolean {
    return this.rows.size > 0;
  }

  get stats(): { running: number; waiting: number; slotsInUse: number; maxSlots: number; capacity: number } {
    return { running: this.rows.size - this.waiting.length, waiting: this.waiting.length, slotsInUse: this.pool.inUse, maxSlots: this.pool.maxSlots, capacity: this.pool.capacity };
  }

  /** Validates and queues a request. Throws on requests the engine cannot run (they never start). */
  submit(req: GenerationRequest): void {
    if (this.rows.has(req.id)) throw new Error(`duplicate request id ${req.id}`);
    const { promptIds, sampling } = req;
    if (promptIds.length === 0) throw new Error('prompt is empty');
    const vocab = this.model.config.vocabSize;
    const bad = promptIds.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) throw new Error(`prompt token id ${bad} is outside the vocabulary [0, ${vocab})`);
    if (promptIds.length + sampling.maxTokens > this.maxModelLen) {
      throw new Error(`prompt (${promptIds.length} tokens) plus max_tokens (${sampling.maxTokens}) exceeds the context of ${this.maxModelLen}`);
    }
    const calibrations: ActiveCalibration[] = [];
    const idle: string[] = [];
    for (const [id, config] of Object.entries(req.calibration)) {
      const calibrator = this.model.calibrators.get(id);
      if (!calibrator) throw new Error(`unknown calibrator '${id}'`);
      if (!calibrator.isActive(config)) {
        idle.push(id);
        continue;
      }
      calibrations.push({ calibrator, config, memo: calibrator.createMemo(config) });
    }
    const extraProcessors = calibrations.flatMap((c) => c.calibrator.logitsProcessor?.(c.config) ?? []);
    const row: Row = {
      req,
      slot: null,
      phase: 'waiting',
      prefilled: 0,
      lastToken: promptIds[promptIds.length - 1]!,
      calibrations,
      idleCalibrators: idle,
      wholePrefill: calibrations.some((c) => c.calibrator.needsWholePrefill(c.config)),
      sampler: new RowSampler(sampling, promptIds, { scratch: this.scratch, extraProcessors }),
      output: new RowOutput(this.model.tokenizer, sampling, promptIds),
      promptLogprobs: sampling.promptLogprobs !== null ? [null] : null,
      aborted: false,
      arrivedAt: performance.now(),
      scheduledAt: null,
      firstTokenAt: null,
    };
    this.rows.set(req.id, row);
    this.waiting.push(row);
  }

  /**
   * Aborts a request. Between steps its slot is freed at once; during a step (a forward may be
   * using the slot) it is freed when that step ends. Unknown ids are ignored.
   */
  abort(id: string): void {
    const row = this.rows.get(id);
    if (!row) return;
    row.aborted = true;
    if (!this.stepping) {
      this.reapAborted();
      this.flush();
    }
  }

  /** Runs one scheduling step. */
  async step(): Promise<void> {
    this.stepping = true;
    try {
      await this.runStep();
    } finally {
      this.stepping = false;
    }
  }

  private async runStep(): Promise<void> {
    this.reapAborted();
    this.admit();
    const prefill = this.planPrefill();
    if (prefill) await this.guarded(prefill.map((p) => p.row), () => this.runPrefill(prefill, prefill[0]!.row.prefilled > 0));
    this.reapAborted();
    if (this.pool.decoding > 0) {
      const decoding = this.decodingRows();
      await this.guarded(decoding, () => this.runDecode(decoding));
    }
    this.reapAborted(); // aborts that arrived during this step's forwards
    this.pool.shrinkToFit();
    this.flush();
  }

  /** Fails every live request (used when the worker is shutting down or broken). */
  failAll(message: string): void {
    for (const row of [...this.rows.values()]) this.fail(row, message);
    this.flush();
  }

  private flush(): void {
    if (this.events.length) this.sink(this.events.splice(0));
  }

  private async guarded(rows: Row[], fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      for (const r of rows) this.fail(r, `forward pass failed: ${(e as Error).message}`);
    }
  }

  private fail(row: Row, message: string): void {
    this.events.push({ type: 'error', id: row.req.id, reason: 'internal', message });
    this.remove(row);
  }

  private remove(row: Row): void {
    if (row.slot) this.pool.release(row.slot);
    row.slot = null;
    this.rows.delete(row.req.id);
    const w = this.waiting.indexOf(row);
    if (w >= 0) this.waiting.splice(w, 1);
  }

  private reapAborted(): void {
    for (const row of this.rows.values()) if (row.aborted) this.finish(row, 'abort', null);
  }

  private admit(): void {
    while (this.waiting.length && this.pool.free > 0) {
      const row = this.waiting.shift()!;
      row.slot = this.pool.acquire();
      row.phase = 'prefill';
      row.scheduledAt = performance.now();
    }
  }

  private decodingRows(): Row[] {
    const out = new Array<Row>(this.pool.decoding);
    for (const r of this.rows.values()) if (r.phase === 'decode' && r.slot) out[r.slot.index] = r;
    return out;
  }

  /** A continuing chunk of one long prompt, or a batch of fresh prompts that fits the token budget. */
  private planPrefill(): { row: Row; tokens: number }[] | null {
    const prefilling = [...this.rows.values()].filter((r) => r.phase === 'prefill');
    if (!prefilling.length) return null;
    const chunkOf = (r: Row) => {
      const left = r.req.promptIds.length - r.prefilled;
      return r.wholePrefill ? left : Math.min(left, this.options.prefillChunk);
    };
    const continuing = prefilling.find((r) => r.prefilled > 0);
    if (continuing) return [{ row: continuing, tokens: chunkOf(continuing) }];
    const batch: { row: Row; tokens: number }[] = [];
    let longest = 0;
    // Rows that want prompt logprobs need logits at every position; batching them with rows that
    // only need the last one would run the LM head over every position of every row.
    const allLogits = prefilling[0]!.promptLogprobs !== null;
    for (const r of prefilling) {
      if ((r.promptLogprobs !== null) !== allLogits) continue;
      const tokens = chunkOf(r);
      const padded = Math.max(longest, tokens) * (batch.length + 1);
      if (batch.length && padded > this.options.maxPrefillTokensPerStep) break;
      batch.push({ row: r, tokens });
      longest = Math.max(longest, tokens);
    }
    return batch;
  }

  /** The graph with the fragments of every calibrator active in these rows. */
  private sessionFor(rows: readonly Row[]): Promise<DecoderSession> {
    return this.model.graphs.sessionFor([...new Set(rows.flatMap((r) => r.calibrations.map((c) => c.calibrator.id)))]);
  }

  private async runPrefill(plan: { row: Row; tokens: number }[], continuing: boolean): Promise<void> {
    const rows = plan.map((p) => p.row);
    const stepRows: StepRow[] = plan.map(({ row, tokens }) => ({
      tokens: row.req.promptIds.slice(row.prefilled, row.prefilled + tokens),
      past: row.prefilled,
      allLogits: row.promptLogprobs !== null,
    }));
    for (const r of stepRows) this.pool.ensureCapacity(r.past + r.tokens.length);
    // A continuing chunk reads its own slot's past; fresh prompts have none, so no cache is fed.
    const fedCap = continuing ? this.pool.capacity : 0;
    const shape = stepShape(stepRows, fedCap);
    const session = await this.sessionFor(rows);
    const out = await this.forward(session, rows, shape, continuing ? rows[0]!.slot : null);

    const logits = out.logits!.data as Float32Array;
    const vocab = this.model.config.vocabSize;
    plan.forEach(({ row, tokens }, b) => {
      const start = row.prefilled;
      if (this.observer.onLogits) {
        for (let t = shape.logitRows === 1 ? tokens - 1 : 0; t < tokens; t++) {
          const at = logitRowIndex(shape, b, t) * vocab;
          this.observer.onLogits(row.req.id, start + t, logits.subarray(at, at + vocab));
        }
      }
      if (row.promptLogprobs) {
        const topN = row.req.sampling.promptLogprobs!;
        for (let t = 0; t < tokens; t++) {
          const next = row.req.promptIds[start + t + 1];
          if (next === undefined) break;
          const at = logitRowIndex(shape, b, t) * vocab;
          row.promptLogprobs.push(computeTokenLogprobs(logits.subarray(at, at + vocab), next, topN));
        }
      }
      row.prefilled += tokens;
      if (row.prefilled < row.req.promptIds.length) return;
      if (row.promptLogprobs) this.events.push({ type: 'prompt', id: row.req.id, logprobs: row.promptLogprobs });
      if (row.req.sampling.maxTokens === 0) {
        this.finish(row, 'length', null);
        return;
      }
      this.pool.promote(row.slot!);
      row.phase = 'decode';
      const at = logitRowIndex(shape, b, tokens - 1) * vocab;
      this.emitToken(row, logits.subarray(at, at + vocab));
    });
  }

  private async runDecode(rows: Row[]): Promise<void> {
    const stepRows: StepRow[] = rows.map((r) => ({ tokens: [r.lastToken], past: r.slot!.used, allLogits: false }));
    this.pool.ensureCapacity(Math.max(...stepRows.map((r) => r.past + 1)));
    const shape = stepShape(stepRows, this.pool.capacity);
    const out = await this.forward(await this.sessionFor(rows), rows, shape, null);
    const logits = out.logits!.data as Float32Array;
    const vocab = this.model.config.vocabSize;
    rows.forEach((row, b) => {
      const rowLogits = logits.subarray(b * vocab, (b + 1) * vocab);
      this.observer.onLogits?.(row.req.id, stepRows[b]!.past, rowLogits);
      this.emitToken(row, rowLogits);
    });
  }

  /**
   * Feeds one call and writes its state outputs back. `single` is the slot of the one row fed with
   * its own past (a continuing prefill chunk); otherwise the batch is either the packed decoding
   * region (fedCap > 0) or fresh rows with no past.
   */
  private async forward(session: DecoderSession, rows: Row[], shape: StepShape, single: SlotHandle | null): Promise<Record<string, OrtTensor>> {
    const graph = session.graph;
    const B = rows.length;
    const feeds = buildStepFeeds(shape, this.model.config.maxSeqLen, graph.geometry);
    for (const spec of graph.states) {
      feeds[spec.name] = new OrtTensorCtor('float32', this.stateFeed(spec.name, rows, shape, single), this.pool.dims(spec, B, shape.fedCap));
    }
    const rowSteps = rows.map((row, b) => this.rowStep(row, shape.rows[b]!, shape));
    Object.assign(feeds, this.rowInputFeeds(graph.rowInputs, rows, rowSteps, shape));

    const out = await session.run(feeds);

    rows.forEach((row, b) => {
      const sr = shape.rows[b]!;
      for (const spec of graph.states) {
        // A calibrator's state only matters to rows that use it; skip the copy for the others.
        if (spec.owner !== 'decoder' && !row.calibrations.some((c) => c.calibrator.id === spec.owner)) continue;
        const data = out[spec.outputName]!.data as Float32Array;
        this.pool.writeBack(spec.name, row.slot!, data, b, shape.newTokens, sr.tokens.length, shape.fedCap, sr.past);
      }
      row.slot!.used = sr.past + sr.tokens.length;
      for (const c of row.calibrations) c.calibrator.afterStep?.(c.config, rowSteps[b]!, c.memo);
    });
    return out;
  }

  /**
   * One state's feed: the packed decoding region or one row's slot, zero-copy; a fresh prefill has
   * no past positions, but a state without a position axis still brings each row's value.
   */
  private stateFeed(name: string, rows: Row[], shape: StepShape, single: SlotHandle | null): Float32Array {
    if (single) return this.pool.rowView(name, single);
    if (shape.fedCap > 0) return this.pool.batchView(name, rows.length);
    return this.pool.hasPositions(name) ? new Float32Array(0) : this.pool.gather(name, rows.map((r) => r.slot!));
  }

  private rowStep(row: Row, sr: StepRow, shape: StepShape): RowStep {
    const pool = this.pool;
    return {
      past: sr.past,
      newTokens: sr.tokens.length,
      fedCap: shape.fedCap,
      paddedNewTokens: shape.newTokens,
      promptLength: row.req.promptIds.length,
      isPrefill: row.phase === 'prefill',
      capacity: pool.capacity,
      state: (name: string) => pool.rowView(name, row.slot!),
    };
  }

  /** Control inputs: identity everywhere, then each active calibrator writes its own rows. */
  private rowInputFeeds(specs: readonly RowInputSpec[], rows: Row[], steps: RowStep[], shape: StepShape): Record<string, OrtTensor> {
    if (!specs.length) return {};
    const B = rows.length;
    const resolve = (d: number | string): number => {
      if (typeof d === 'number') return d;
      if (d === 'new_tokens') return shape.newTokens;
      if (d === 'past_capacity') return shape.fedCap;
      if (d === 'total_keys') return shape.fedCap + shape.newTokens;
      throw new Error(`row input dim '${d}' is not known to the engine`);
    };
    const buffers = new Map<string, { spec: RowInputSpec; data: Float32Array | Uint8Array; perRow: number; dims: number[] }>();
    for (const spec of specs) {
      const dims = spec.dims.map(resolve);
      const perRow = dims.reduce((a, b) => a * b, 1);
      const data = spec.dtype === 'bool' ? new Uint8Array(B * perRow) : new Float32Array(B * perRow);
      data.fill(spec.identity);
      buffers.set(spec.name, { spec, data, perRow, dims });
    }
    rows.forEach((row, b) => {
      for (const c of row.calibrations) {
        const writer: RowInputWriter = {
          set(name, values) {
            const buf = buffers.get(name);
            if (!buf || buf.spec.owner !== c.calibrator.id) throw new Error(`calibrator ${c.calibrator.id} wrote unknown input '${name}'`);
            if (typeof values === 'number') buf.data.fill(values, b * buf.perRow, (b + 1) * buf.perRow);
            else {
              if (values.length !== buf.perRow) throw new Error(`input '${name}': ${values.length} values for a row of ${buf.perRow}`);
              buf.data.set(values, b * buf.perRow);
            }
          },
        };
        c.calibrator.writeInputs(c.config, steps[b]!, writer);
      }
    });
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, buf] of buffers) {
      feeds[name] = buf.spec.dtype === 'bool'
        ? new OrtTensorCtor('bool', buf.data as Uint8Array, [B, ...buf.dims])
        : new OrtTensorCtor('float32', buf.data as Float32Array, [B, ...buf.dims]);
    }
    return feeds;
  }

  /**
   * Samples from one logits row, emits the token, and finishes the row when it should stop. A row
   * whose sampling fails (e.g. its processors pushed every logit to ±∞) fails alone: the other rows
   * of the step are unaffected.
   */
  private emitToken(row: Row, logits: Float32Array): void {
    let sampled: { tokenId: number; logprobs: TokenLogprobs | null };
    try {
      sampled = row.sampler.sample(logits);
    } catch (e) {
      this.fail(row, `sampling failed: ${(e as Error).message}`);
      return;
    }
    const { tokenId, logprobs } = sampled;
    row.firstTokenAt ??= performance.now();
    row.lastToken = tokenId;
    const { text, finished } = row.output.append(tokenId);
    this.events.push({ type: 'tokens', id: row.req.id, tokenIds: [tokenId], text, logprobs: logprobs ? [logprobs] : null });
    // submit() keeps prompt + max_tokens within the context, so 'length' comes from RowOutput.
    if (finished) this.finish(row, finished.reason, finished.stoppedBy);
  }

  private finish(row: Row, reason: 'stop' | 'length' | 'abort', stoppedBy: string | number | null): void {
    const tail = row.output.flush();
    if (tail) this.events.push({ type: 'tokens', id: row.req.id, tokenIds: [], text: tail, logprobs: null });
    const now = performance.now();
    const scheduled = row.scheduledAt ?? now;
    const first = row.firstTokenAt ?? now;
    const detail = row.req.calibrationDetail ?? 'summary';
    this.events.push({
      type: 'finish',
      id: row.req.id,
      reason,
      stoppedBy,
      promptTokens: row.req.promptIds.length,
      completionTokens: row.output.tokenCount,
      calibration: Object.fromEntries([
        ...row.calibrations.map((c) => [c.calibrator.id, { active: true, ...c.calibrator.report(c.config, c.memo, detail) }]),
        ...row.idleCalibrators.map((id) => [id, { active: false }]),
      ]),
      timing: { queuedMs: scheduled - row.arrivedAt, prefillMs: first - scheduled, decodeMs: now - first },
    });
    this.remove(row);
  }
}
