/**
 * The engine loop that runs inside the worker thread: continuous batching over a slot pool,
 * request-owned sequences, image encoding, per-row sampling, calibrator feeds, and token events.
 *
 * Each step carries out the scheduler's decisions (scheduler.ts): (1) admit waiting requests whose
 * every slot is free, (2) encode the images of newly admitted rows in batched vision-tower calls,
 * (3) run at most one prefill call (a batch of fresh prompts of one graph, or the next chunk of one
 * long prompt), then (4) one decode call per graph group. Long prompts are chunked, so streaming
 * rows advance every step. Requests join and leave only between steps; an abort takes effect at the
 * next step boundary, and every slot of the request is freed there.
 */
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { DecoderConfig } from '../../models/checkpoint/decoder-weights.js';
import type { AnyCalibrator, ModelFacts, RowInputWriter, RowStep, TapValue, Taps } from '../../calibrators/calibrator.js';
import type { RowInputSpec } from '../../models/compiler/hooks.js';
import { DECODER_IO } from '../../models/compiler/decoder-graph.js';
import type { EngineEvent, GenerationRequest, TokenLogprobs } from './types.js';
import type { EngineOptions } from './engine-options.js';
import type { ImageEncoder } from './image-encoder.js';
import { OrtTensorCtor, type DecoderSession, type OrtTensor } from './ort-session.js';
import type { EngineGraphs } from './decoder-graphs.js';
import { SlotPool, type SlotHandle } from './slot-pool.js';
import { buildStepFeeds, logitRowIndex, stepShape, type StepRow, type StepShape } from './step-feeds.js';
import { RowSampler } from './sampling/row-sampler.js';
import { RowOutput } from './sampling/row-output.js';
import { computeTokenLogprobs } from './sampling/logprobs.js';
import { SamplingScratch } from './sampling/token-selection.js';
import { checkImages, promptFacts, RequestUnit, type ActiveCalibration, type MainRow, type Row } from './sequences.js';
import { pickAdmissions, pickEncodes, planPrefill, type PrefillPlan } from './scheduler.js';

export interface EngineModel {
  name: string;
  config: DecoderConfig;
  /** What calibrators may know of the model (profile, vision facts). */
  facts: ModelFacts;
  tokenizer: Tokenizer;
  /** One graph per set of active calibrators (the empty set is the plain graph). */
  graphs: EngineGraphs;
  /** The vision tower of an LVLM; null for text-only models. */
  vision: ImageEncoder | null;
  /** In registry order: fragments compose, and calibrators run, in this order. */
  calibrators: ReadonlyMap<string, AnyCalibrator>;
}

export type EventSink = (events: EngineEvent[]) => void;

/** Optional taps for tests and diagnostics. */
export interface EngineObserver {
  /** Raw logits of one sequence position of a request's main row, before any processing; copy them if you keep them. */
  onLogits?(requestId: string, position: number, logits: Float32Array): void;
}

/** How a call feeds the rows' states: fresh prompts (no past), one row's own slot, or a packed decode run. */
type StateFeed = { kind: 'fresh' } | { kind: 'single'; slot: SlotHandle } | { kind: 'packed'; start: number };

/** Images encoded per vision-tower call at most (a call always takes at least one request's images). */
const MAX_IMAGES_PER_ENCODE = 16;

export class EngineCore {
  private readonly pool: SlotPool;
  private readonly units = new Map<string, RequestUnit>();
  private readonly waiting: RequestUnit[] = [];
  private readonly events: EngineEvent[] = [];
  private readonly scratch = new SamplingScratch();
  /** Requests that ended during a phase; finished after it, so no slot moves under a running phase. */
  private readonly ending: { unit: RequestUnit; reason: 'stop' | 'length'; stoppedBy: string | number | null }[] = [];
  /** Graph ids by graph key, for decode groups. */
  private readonly groupIds = new Map<string, readonly string[]>();
  private stepping = false;
  /** Tokens fed by the step in progress, and by finished steps not yet reported (attune:iteration_tokens_total). */
  private stepTokens = 0;
  private readonly stepTokenLog: number[] = [];
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
    return this.units.size > 0;
  }

  get stats(): { running: number; waiting: number; slotsInUse: number; maxSlots: number; capacity: number } {
    return { running: this.units.size - this.waiting.length, waiting: this.waiting.length, slotsInUse: this.pool.inUse, maxSlots: this.pool.maxSlots, capacity: this.pool.capacity };
  }

  /** Validates and queues a request. Throws on requests the engine cannot run (they never start). */
  submit(req: GenerationRequest): void {
    if (this.units.has(req.id)) throw new Error(`duplicate request id ${req.id}`);
    const { promptIds, sampling } = req;
    this.checkPrompt(promptIds, sampling.maxTokens, 'prompt');
    const imageProblem = checkImages(req, this.model.facts);
    if (imageProblem) throw new Error(imageProblem);
    // Checked here, not in the vision call, where one wrong image would fail its batch-mates' too.
    const pixels = this.model.vision?.pixelsPerImage;
    const wrong = req.images?.inputs.findIndex((image) => image.pixels.length !== pixels) ?? -1;
    if (wrong >= 0) throw new Error(`image ${wrong} has ${req.images!.inputs[wrong]!.pixels.length} pixel values; the vision tower takes ${pixels}`);

    const calibrations: ActiveCalibration[] = [];
    const idle: string[] = [];
    for (const id of Object.keys(req.calibration)) if (!this.model.calibrators.has(id)) throw new Error(`unknown calibrator '${id}'`);
    for (const [id, calibrator] of this.model.calibrators) {
      if (!(id in req.calibration)) continue;
      const config = req.calibration[id];
      if (!calibrator.isActive(config)) idle.push(id);
      else calibrations.push({ calibrator, config, memo: calibrator.createMemo(config) });
    }
    for (const c of calibrations) {
      const clash = c.calibrator.conflicts?.find((other) => calibrations.some((d) => d.calibrator.id === other));
      if (clash) throw new Error(`calibrators ${c.calibrator.id} and ${clash} cannot run on the same request`);
    }
    const graphIds = calibrations.map((c) => c.calibrator.id);
    const graphKey = this.model.graphs.keyFor(graphIds);
    this.groupIds.set(graphKey, graphIds);
    const extraProcessors = calibrations.flatMap((c) => c.calibrator.logitsProcessor?.(c.config) ?? []);
    const unit = new RequestUnit(req, calibrations, idle, graphIds, graphKey, calibrations.some((c) => c.calibrator.needsWholePrefill(c.config)), {
      role: 'main',
      name: '',
      owner: null,
      promptIds,
      images: req.images?.spans ?? [],
      slot: null,
      phase: 'waiting',
      prefilled: 0,
      lastToken: promptIds[promptIds.length - 1]!,
      sampler: new RowSampler(sampling, promptIds, { scratch: this.scratch, extraProcessors, modelStopIds: this.model.tokenizer.stopIds }),
      output: new RowOutput(this.model.tokenizer, sampling, promptIds),
      promptLogprobs: sampling.promptLogprobs !== null ? [null] : null,
      encoded: null,
    });
    for (const c of calibrations) {
      for (const spec of c.calibrator.auxiliary?.(c.config, promptFacts(req), this.model.facts) ?? []) {
        this.checkPrompt(spec.promptIds, spec.role === 'companion' ? sampling.maxTokens : 0, `${c.calibrator.id}'s ${spec.role} '${spec.name}'`);
        unit.addAuxiliary(c.calibrator, spec);
      }
    }
    if (unit.slotsNeeded > this.pool.maxSlots) {
      throw new Error(`the request needs ${unit.slotsNeeded} sequences at once, more than the engine's ${this.pool.maxSlots} slots`);
    }
    this.units.set(req.id, unit);
    this.waiting.push(unit);
  }

  private checkPrompt(ids: readonly number[], maxTokens: number, what: string): void {
    if (ids.length === 0) throw new Error(`${what} is empty`);
    const vocab = this.model.config.vocabSize;
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) throw new Error(`${what}: token id ${bad} is outside the vocabulary [0, ${vocab})`);
    if (ids.length + maxTokens > this.maxModelLen) {
      throw new Error(`${what} (${ids.length} tokens) plus max_tokens (${maxTokens}) exceeds the context of ${this.maxModelLen}`);
    }
  }

  /**
   * Aborts a request and every sequence it owns. Between steps its slots are freed at once; during
   * a step (a forward may be using them) when that step ends. Unknown ids are ignored.
   */
  abort(id: string): void {
    const unit = this.units.get(id);
    if (!unit) return;
    unit.aborted = true;
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

  /** Tokens each finished step fed the model (prompt tokens prefilled + rows decoded), not yet reported. */
  takeStepTokens(): number[] {
    return this.stepTokenLog.splice(0);
  }

  private async runStep(): Promise<void> {
    this.stepTokens = 0;
    this.reapAborted();
    this.admit();
    const encodes = pickEncodes(this.mainRows('encode'), MAX_IMAGES_PER_ENCODE);
    if (encodes.length) await this.guarded(encodes.map((r) => r.unit), () => this.runEncode(encodes));
    this.reapAborted();
    const prefill = planPrefill(this.rowsIn('prefill'), this.options);
    if (prefill) await this.guarded(prefill.items.map((p) => p.row.unit), () => this.runPrefill(prefill));
    this.endFinished();
    this.reapAborted();
    // One call per group. A failed call removes its requests, which moves later runs: so each run
    // is looked up afresh.
    const done = new Set<string>();
    for (;;) {
      const run = this.pool.runs().find((r) => !done.has(r.group));
      if (!run) break;
      done.add(run.group);
      const rows = this.decodingRows(run.start, run.count);
      await this.guarded(rows.map((r) => r.unit), () => this.runDecode(rows, run.group, run.start));
    }
    for (const unit of [...this.units.values()]) if (unit.calibratorError) this.fail(unit, unit.calibratorError);
    this.endFinished();
    this.reapAborted(); // aborts that arrived during this step's forwards
    this.pool.shrinkToFit();
    if (this.stepTokens > 0) this.stepTokenLog.push(this.stepTokens);
    this.flush();
  }

  /** Fails every live request (used when the worker is shutting down or broken). */
  failAll(message: string): void {
    for (const unit of [...this.units.values()]) this.fail(unit, message);
    this.flush();
  }

  private flush(): void {
    // A step with no events (a middle chunk of a long prompt) still reports the tokens it fed.
    if (this.events.length || this.stepTokenLog.length) this.sink(this.events.splice(0));
  }

  /**
   * Runs one of a request's calibrator hooks for its own row. A hook that throws (a calibrator bug)
   * marks that request failed instead of failing the whole call, so its batch-mates carry on.
   */
  private calibratorHook(unit: RequestUnit, c: ActiveCalibration, hook: string, fn: () => void): void {
    if (unit.calibratorError) return;
    try {
      fn();
    } catch (e) {
      unit.calibratorError = `calibrator ${c.calibrator.id} failed in ${hook}: ${(e as Error).message}`;
    }
  }

  private async guarded(units: RequestUnit[], fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      for (const u of new Set(units)) if (this.units.has(u.id)) this.fail(u, `forward pass failed: ${(e as Error).message}`);
    }
  }

  private fail(unit: RequestUnit, message: string): void {
    this.events.push({ type: 'error', id: unit.id, reason: 'internal', message });
    this.remove(unit);
  }

  private remove(unit: RequestUnit): void {
    for (const row of unit.rows) {
      if (row.slot) this.pool.release(row.slot);
      row.slot = null;
    }
    this.units.delete(unit.id);
    const w = this.waiting.indexOf(unit);
    if (w >= 0) this.waiting.splice(w, 1);
  }

  private reapAborted(): void {
    for (const unit of this.units.values()) if (unit.aborted) this.finish(unit, 'abort', null);
  }

  private endFinished(): void {
    for (const { unit, reason, stoppedBy } of this.ending.splice(0)) if (this.units.has(unit.id)) this.finish(unit, reason, stoppedBy);
  }

  private *mainRows(phase: Row['phase']): Generator<MainRow> {
    for (const u of this.units.values()) if (u.main.phase === phase) yield u.main;
  }

  private rowsIn(phase: Row['phase']): Row[] {
    const out: Row[] = [];
    for (const u of this.units.values()) for (const r of u.rows) if (r.phase === phase && !u.aborted) out.push(r);
    return out;
  }

  private admit(): void {
    for (const unit of pickAdmissions(this.waiting, this.pool.free)) {
      this.waiting.splice(this.waiting.indexOf(unit), 1);
      unit.scheduledAt = performance.now();
      for (const row of unit.rows) {
        row.slot = this.pool.acquire();
        row.phase = 'prefill';
      }
      const hasPrepass = unit.aux.some((r) => r.role === 'prepass');
      unit.main.phase = unit.main.images.length > 0 ? 'encode' : hasPrepass ? 'blocked' : 'prefill';
    }
  }

  private decodingRows(start: number, count: number): Row[] {
    const out = new Array<Row>(count);
    for (const u of this.units.values()) {
      for (const r of u.rows) if (r.phase === 'decode' && r.slot && r.slot.index >= start && r.slot.index < start + count) out[r.slot.index - start] = r;
    }
    return out;
  }

  // ---- images ---------------------------------------------------------------------------------

  /** One vision-tower call over every image of these rows (an image sent twice is encoded once). */
  private async runEncode(rows: MainRow[]): Promise<void> {
    const vision = this.model.vision;
    if (!vision) throw new Error('the model has no vision tower');
    const byKey = new Map<string, number>();
    const pixels: Float32Array[] = [];
    const index = rows.map((r) =>
      r.unit.req.images!.inputs.map((img) => {
        let i = byKey.get(img.key);
        if (i === undefined) {
          byKey.set(img.key, (i = pixels.length));
          pixels.push(img.pixels);
        }
        return i;
      }));
    const started = performance.now();
    const encoded = await vision.encode(pixels);
    const ms = performance.now() - started;
    rows.forEach((row, k) => {
      const unit = row.unit;
      unit.encodeMs += ms;
      row.encoded = index[k]!.map((i) => encoded[i]!);
      for (const c of unit.calibrations) {
        this.calibratorHook(unit, c, 'afterVision', () => c.calibrator.afterVision?.(c.config, c.memo, row.encoded!.map((e) => e.taps.get(c.calibrator.id) ?? EMPTY_TAPS)));
      }
      row.phase = unit.aux.some((r) => r.role === 'prepass') ? 'blocked' : 'prefill';
    });
  }

  // ---- prefill --------------------------------------------------------------------------------

  private async runPrefill(plan: PrefillPlan): Promise<void> {
    const rows = plan.items.map((p) => p.row);
    this.stepTokens += plan.items.reduce((a, p) => a + p.tokens, 0);
    const stepRows: StepRow[] = plan.items.map(({ row, tokens }) => ({
      tokens: row.promptIds.slice(row.prefilled, row.prefilled + tokens),
      past: row.prefilled,
      allLogits: row.role === 'main' && (row as MainRow).promptLogprobs !== null,
      images: row.images,
    }));
    for (const r of stepRows) this.pool.ensureCapacity(r.past + r.tokens.length);
    // A continuing chunk reads its own slot's past; fresh prompts have none, so no cache is fed.
    const shape = stepShape(stepRows, plan.continuing ? this.pool.capacity : 0);
    const session = await this.model.graphs.sessionFor(rows[0]!.unit.graphIds, () => this.liveGraphKeys());
    const started = performance.now();
    const out = await this.forward(session, rows, shape, plan.continuing ? { kind: 'single', slot: rows[0]!.slot! } : { kind: 'fresh' });
    // A request's prepass time is that of the calls that held its prepass rows (like encodeMs).
    const ms = performance.now() - started;
    for (const unit of new Set(rows.filter((r) => r.role === 'prepass').map((r) => r.unit))) unit.prepassMs += ms;

    const logits = out[DECODER_IO.logits]!.data as Float32Array;
    const vocab = this.model.config.vocabSize;
    const lastLogits = (b: number) => {
      const at = logitRowIndex(shape, b, stepRows[b]!.tokens.length - 1) * vocab;
      return logits.subarray(at, at + vocab);
    };
    const batchIndex = new Map(rows.map((r, b) => [r, b]));
    plan.items.forEach(({ row, tokens }, b) => {
      if (row.role === 'main') this.recordPromptLogits(row as MainRow, shape, b, tokens, logits);
      row.prefilled += tokens;
    });
    for (const [row, b] of batchIndex) {
      if (row.prefilled < row.promptIds.length) continue;
      if (row.role === 'prepass') this.endPrepass(row, session, out, b);
      else if (row.role === 'main') this.startDecoding(row as MainRow, lastLogits(b), (c) => lastLogits(batchIndex.get(c)!));
    }
  }

  private recordPromptLogits(row: MainRow, shape: StepShape, b: number, tokens: number, logits: Float32Array): void {
    const vocab = this.model.config.vocabSize;
    const start = row.prefilled;
    if (this.observer.onLogits) {
      for (let t = shape.logitRows === 1 ? tokens - 1 : 0; t < tokens; t++) {
        const at = logitRowIndex(shape, b, t) * vocab;
        this.observer.onLogits(row.unit.id, start + t, logits.subarray(at, at + vocab));
      }
    }
    if (!row.promptLogprobs) return;
    const topN = row.unit.req.sampling.promptLogprobs!;
    for (let t = 0; t < tokens; t++) {
      const next = row.promptIds[start + t + 1];
      if (next === undefined) break;
      const at = logitRowIndex(shape, b, t) * vocab;
      row.promptLogprobs.push(computeTokenLogprobs(logits.subarray(at, at + vocab), next, topN));
    }
  }

  /** A prepass has seen its whole prompt: its taps go to its calibrator, its slot is freed, and the main row may go. */
  private endPrepass(row: Row, session: DecoderSession, out: Record<string, OrtTensor>, b: number): void {
    const unit = row.unit;
    const owner = row.owner!;
    const c = unit.calibrations.find((x) => x.calibrator === owner)!;
    this.calibratorHook(unit, c, 'afterAuxiliary', () => owner.afterAuxiliary?.(c.config, c.memo, row.name, tapsOf(session, out, owner.id, b)));
    this.pool.release(row.slot!);
    row.slot = null;
    unit.aux.splice(unit.aux.indexOf(row), 1);
    if (unit.main.phase === 'blocked' && !unit.aux.some((r) => r.role === 'prepass')) unit.main.phase = 'prefill';
  }

  /** The main row's prompt is in: its companions and it join their decode group, and it samples its first token. */
  private startDecoding(row: MainRow, logits: Float32Array, companionLogits: (c: Row) => Float32Array): void {
    const unit = row.unit;
    // Every image position is in the cache now: the features (views into the whole vision call's
    // output, taps included) need not live as long as the generation.
    row.encoded = null;
    if (row.promptLogprobs) this.events.push({ type: 'prompt', id: unit.id, logprobs: row.promptLogprobs });
    if (unit.req.sampling.maxTokens === 0) {
      this.ending.push({ unit, reason: 'length', stoppedBy: null });
      return;
    }
    for (const r of [row, ...unit.companions]) {
      this.pool.promote(r.slot!, unit.graphKey);
      r.phase = 'decode';
    }
    this.emitToken(row, logits, new Map(unit.companions.map((c) => [c.name, companionLogits(c)])));
  }

  /** The graphs live requests run: kept open while they do, whatever --max-graphs says. */
  private liveGraphKeys(): Set<string> {
    return new Set([...this.units.values()].map((u) => u.graphKey));
  }

  // ---- decode ---------------------------------------------------------------------------------

  private async runDecode(rows: Row[], graphKey: string, start: number): Promise<void> {
    this.stepTokens += rows.length;
    const stepRows: StepRow[] = rows.map((r) => ({ tokens: [r.lastToken], past: r.slot!.used, allLogits: false, images: r.images }));
    this.pool.ensureCapacity(Math.max(...stepRows.map((r) => r.past + 1)));
    const shape = stepShape(stepRows, this.pool.capacity);
    const session = await this.model.graphs.sessionFor(this.groupIds.get(graphKey) ?? [], () => this.liveGraphKeys());
    const out = await this.forward(session, rows, shape, { kind: 'packed', start });
    const logits = out[DECODER_IO.logits]!.data as Float32Array;
    const vocab = this.model.config.vocabSize;
    const rowLogits = (b: number) => logits.subarray(b * vocab, (b + 1) * vocab);
    const batchIndex = new Map(rows.map((r, b) => [r, b]));
    rows.forEach((row, b) => {
      if (row.role !== 'main') return;
      const unit = row.unit;
      this.observer.onLogits?.(unit.id, stepRows[b]!.past, rowLogits(b));
      this.emitToken(row as MainRow, rowLogits(b), new Map(unit.companions.map((c) => [c.name, rowLogits(batchIndex.get(c)!)])));
    });
  }

  // ---- one forward call -----------------------------------------------------------------------

  /** Feeds one call and writes its state outputs back. */
  private async forward(session: DecoderSession, rows: Row[], shape: StepShape, feed: StateFeed): Promise<Record<string, OrtTensor>> {
    const graph = session.graph;
    const B = rows.length;
    const feeds = buildStepFeeds(shape, this.model.config.maxSeqLen, graph.geometry);
    if (graph.imageSplice) Object.assign(feeds, this.imageFeeds(rows, shape));
    for (const spec of graph.states) {
      feeds[spec.name] = new OrtTensorCtor('float32', this.stateFeed(spec.name, rows, feed), this.pool.dims(spec, B, shape.fedCap));
    }
    const rowSteps = rows.map((row, b) => this.rowStep(row, shape.rows[b]!, shape));
    Object.assign(feeds, this.rowInputFeeds(graph.rowInputs, rows, rowSteps, shape));

    const out = await session.run(feeds);

    rows.forEach((row, b) => {
      const sr = shape.rows[b]!;
      const calibrations = row.role === 'main' ? row.unit.calibrations : [];
      for (const spec of graph.states) {
        // A calibrator's state only matters to rows that use it; skip the copy for the others.
        if (spec.owner !== 'decoder' && !calibrations.some((c) => c.calibrator.id === spec.owner)) continue;
        const data = out[spec.outputName]!.data as Float32Array;
        this.pool.writeBack(spec.name, row.slot!, data, b, shape.newTokens, sr.tokens.length, shape.fedCap, sr.past);
      }
      row.slot!.used = sr.past + sr.tokens.length;
      for (const c of calibrations) this.calibratorHook(row.unit, c, 'afterStep', () => c.calibrator.afterStep?.(c.config, rowSteps[b]!, c.memo, tapsOf(session, out, c.calibrator.id, b)));
    });
    return out;
  }

  /** The image features of every image-token position among this step's new tokens. */
  private imageFeeds(rows: Row[], shape: StepShape): Record<string, OrtTensor> {
    const width = this.model.config.dim;
    const slots: number[] = [];
    const features: Float32Array[] = [];
    rows.forEach((row, b) => {
      if (row.role !== 'main' || !row.images.length) return;
      const sr = shape.rows[b]!;
      for (const span of row.images) {
        const from = Math.max(span.start, sr.past);
        const to = Math.min(span.start + span.length, sr.past + sr.tokens.length);
        if (from >= to) continue; // not among this step's tokens (a decode step, or a later chunk)
        const image = (row as MainRow).encoded![span.image]!.features;
        for (let p = from; p < to; p++) {
          slots.push(b, p - sr.past);
          const k = p - span.start;
          features.push(image.subarray(k * width, (k + 1) * width));
        }
      }
    });
    const data = new Float32Array(features.length * width);
    features.forEach((f, i) => data.set(f, i * width));
    return {
      [DECODER_IO.imageFeatures]: new OrtTensorCtor('float32', data, [features.length, width]),
      [DECODER_IO.imageSlots]: new OrtTensorCtor('int64', BigInt64Array.from(slots, BigInt), [features.length, 2]),
    };
  }

  /**
   * One state's feed: a packed decode run or one row's slot, zero-copy; fresh prompts have no past
   * positions, but a state without a position axis still brings each row's value.
   */
  private stateFeed(name: string, rows: Row[], feed: StateFeed): Float32Array {
    switch (feed.kind) {
      case 'single':
        return this.pool.rowView(name, feed.slot);
      case 'packed':
        return this.pool.batchView(name, feed.start, rows.length);
      case 'fresh':
        return this.pool.hasPositions(name) ? new Float32Array(0) : this.pool.gather(name, rows.map((r) => r.slot!));
    }
  }

  private rowStep(row: Row, sr: StepRow, shape: StepShape): RowStep {
    const pool = this.pool;
    return {
      past: sr.past,
      newTokens: sr.tokens.length,
      fedCap: shape.fedCap,
      paddedNewTokens: shape.newTokens,
      promptLength: row.promptIds.length,
      isPrefill: row.phase === 'prefill',
      images: row.images,
      capacity: pool.capacity,
      state: (name: string) => pool.rowView(name, row.slot!),
    };
  }

  /**
   * Control inputs: identity everywhere, then each active calibrator of a main row writes its own
   * row. Auxiliary rows keep identity inputs: they compute the plain model.
   */
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
      if (row.role !== 'main') return;
      for (const c of row.unit.calibrations) {
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
        this.calibratorHook(row.unit, c, 'writeInputs', () => c.calibrator.writeInputs(c.config, steps[b]!, writer, c.memo));
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

  // ---- sampling and events --------------------------------------------------------------------

  /**
   * Samples the main row's next token from its logits (after its calibrators mixed in companion
   * logits), emits it, feeds it to the companions, and marks the request ended when it should stop.
   * A row whose sampling fails (e.g. its processors pushed every logit to ±∞) fails alone.
   */
  private emitToken(row: MainRow, logits: Float32Array, companions: ReadonlyMap<string, Float32Array>): void {
    const unit = row.unit;
    if (unit.calibratorError) return; // its logits may be wrong; it fails at the end of the step
    const mixers = companions.size ? unit.calibrations.filter((c) => c.calibrator.mixLogits) : [];
    const mix = mixers.length ? (l: Float32Array) => { for (const c of mixers) c.calibrator.mixLogits!(c.config, c.memo, l, companions); } : undefined;
    let sampled: { tokenId: number; logprobs: TokenLogprobs | null };
    try {
      sampled = row.sampler.sample(logits, mix);
    } catch (e) {
      this.fail(unit, `sampling failed: ${(e as Error).message}`);
      return;
    }
    const { tokenId, logprobs } = sampled;
    unit.firstTokenAt ??= performance.now();
    row.lastToken = tokenId;
    for (const c of unit.companions) c.lastToken = tokenId;
    const { text, finished } = row.output.append(tokenId);
    this.events.push({ type: 'tokens', id: unit.id, tokenIds: [tokenId], text, logprobs: logprobs ? [logprobs] : null });
    // submit() keeps prompt + max_tokens within the context, so 'length' comes from RowOutput.
    if (finished) this.ending.push({ unit, reason: finished.reason, stoppedBy: finished.stoppedBy });
  }

  private finish(unit: RequestUnit, reason: 'stop' | 'length' | 'abort', stoppedBy: string | number | null): void {
    const row = unit.main;
    const tail = row.output.flush();
    if (tail) this.events.push({ type: 'tokens', id: unit.id, tokenIds: [], text: tail, logprobs: null });
    const now = performance.now();
    const scheduled = unit.scheduledAt ?? now;
    const first = unit.firstTokenAt ?? now;
    const detail = unit.req.calibrationDetail ?? 'summary';
    const reports: [string, Record<string, unknown>][] = [];
    for (const c of unit.calibrations) this.calibratorHook(unit, c, 'report', () => reports.push([c.calibrator.id, { active: true, ...c.calibrator.report(c.config, c.memo, detail) }]));
    if (unit.calibratorError) return this.fail(unit, unit.calibratorError);
    this.events.push({
      type: 'finish',
      id: unit.id,
      reason,
      stoppedBy,
      promptTokens: row.promptIds.length,
      completionTokens: row.output.tokenCount,
      calibration: Object.fromEntries([
        ...reports,
        ...unit.idleCalibrators.map((id) => [id, { active: false }]),
      ]),
      timing: { queuedMs: scheduled - unit.arrivedAt, encodeMs: unit.encodeMs, prepassMs: unit.prepassMs, prefillMs: first - scheduled, decodeMs: now - first },
    });
    this.remove(unit);
  }
}

const EMPTY_TAPS: Taps = new Map();

/** One owner's taps for batch row b of a call's outputs. */
function tapsOf(session: DecoderSession, out: Record<string, OrtTensor>, owner: string, b: number): Taps {
  const specs = session.graph.taps.filter((t) => t.owner === owner);
  if (!specs.length) return EMPTY_TAPS;
  const taps = new Map<string, TapValue>();
  for (const spec of specs) {
    const t = out[spec.outputName]!;
    const dims = t.dims.slice(1).map(Number);
    const n = dims.reduce((a, d) => a * d, 1);
    taps.set(spec.name, { data: (t.data as Float32Array).subarray(b * n, (b + 1) * n), dims });
  }
  return taps;
}
