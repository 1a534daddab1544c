/**
 * The Prometheus metrics: vLLM's stems, units and buckets under the `attune:` prefix (so dashboards
 * port), TGI-style failure reasons, and per-calibrator metrics. One Registry per server, never the
 * global one, so several servers in one process (tests) do not collide. Every metric carries
 * `model_name` through the registry's default labels.
 *
 * Intervals follow vLLM: queue = arrival at the engine → scheduled; prefill = scheduled → first
 * token; decode = first → last token (all three on the engine worker's clock); TTFT and e2e from
 * the HTTP request's arrival, so they include tokenization and admission.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CONNECTION_CLOSE_REASONS, type ConnectionCloseReason } from '../api/transport/connection-guard.js';
import type { EngineStats } from '../engine/protocol.js';
import type { EngineEvent } from '../engine/types.js';
import { CALIBRATION_SECONDS_BUCKETS, countBucketsUpTo, ITERATION_TOKENS_BUCKETS, ITL_BUCKETS, PARAMS_N_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS } from './buckets.js';
import { ReportHistograms } from './report-histograms.js';

export const FAILURE_REASONS = ['overloaded', 'validation', 'aborted', 'timeout', 'internal'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

type FinishEvent = Extract<EngineEvent, { type: 'finish' }>;

export class ServerMetrics {
  readonly registry = new Registry();
  readonly reports: ReportHistograms;
  private readonly ttft: Histogram;
  private readonly itl: Histogram;
  private readonly e2e: Histogram;
  private readonly queue: Histogram;
  private readonly prefill: Histogram;
  private readonly decode: Histogram;
  private readonly encoder: Histogram;
  private readonly prepass: Histogram;
  private readonly inference: Histogram;
  private readonly timePerOutputToken: Histogram;
  private readonly requestPromptTokens: Histogram;
  private readonly requestGenerationTokens: Histogram;
  private readonly requestMaxTokens: Histogram;
  private readonly requestMaxGenerationTokens: Histogram;
  private readonly requestN: Histogram;
  private readonly iterationTokens: Histogram;
  private readonly promptTokens: Counter;
  private readonly generationTokens: Counter;
  private readonly success: Counter<'finished_reason'>;
  private readonly failure: Counter<'reason'>;
  private readonly calibrationRequests: Counter<'calibrator'>;
  private readonly calibrationSeconds: Histogram<'calibrator'>;
  private readonly connectionsClosed: Counter<'reason'>;
  private openConnections: () => number = () => 0;

  /** `maxModelLen` sizes the token-count histograms (vLLM's 1-2-5 series up to the context length). */
  constructor(modelName: string, engineStats: () => EngineStats, maxModelLen = 100_000) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ model_name: modelName });
    const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, buckets, registers });

    this.ttft = histogram('attune:time_to_first_token_seconds', 'Time from HTTP arrival to the first generated token', TTFT_BUCKETS);
    this.itl = histogram('attune:inter_token_latency_seconds', 'Time between consecutive generated tokens of one request', ITL_BUCKETS);
    this.e2e = histogram('attune:e2e_request_latency_seconds', 'Time from HTTP arrival to the last token', REQUEST_LATENCY_BUCKETS);
    this.queue = histogram('attune:request_queue_time_seconds', 'Time a request waited for a batch slot', REQUEST_LATENCY_BUCKETS);
    this.prefill = histogram('attune:request_prefill_time_seconds', 'Time from scheduling to the first token', REQUEST_LATENCY_BUCKETS);
    this.decode = histogram('attune:request_decode_time_seconds', 'Time from the first to the last token', REQUEST_LATENCY_BUCKETS);
    this.encoder = histogram('attune:request_encoder_time_seconds', 'Vision-tower time of the encoder calls that held a request\'s images (requests with images only)', TTFT_BUCKETS);
    this.prepass = histogram('attune:request_prepass_time_seconds', 'Prefill time of the calls that held a request\'s prepass sequences, e.g. VHR\'s text-only pass (requests with a prepass only); part of the prefill time', TTFT_BUCKETS);
    this.inference = histogram('attune:request_inference_time_seconds', 'Time from scheduling to the last token (prefill + decode)', REQUEST_LATENCY_BUCKETS);
    this.timePerOutputToken = histogram('attune:request_time_per_output_token_seconds', 'Per sequence: decode time over its generated tokens after the first', ITL_BUCKETS);
    const tokens = countBucketsUpTo(maxModelLen);
    this.requestPromptTokens = histogram('attune:request_prompt_tokens', 'Prompt tokens of each finished sequence', tokens);
    this.requestGenerationTokens = histogram('attune:request_generation_tokens', 'Generated tokens of each finished sequence', tokens);
    this.requestMaxTokens = histogram('attune:request_params_max_tokens', 'The max_tokens of each finished sequence (the rest of the context when not given)', tokens);
    this.requestMaxGenerationTokens = histogram('attune:request_max_num_generation_tokens', 'Per prompt of a finished request: the most tokens any of its n choices generated', tokens);
    this.requestN = histogram('attune:request_params_n', 'The n of each prompt of a finished request', PARAMS_N_BUCKETS);
    this.iterationTokens = histogram('attune:iteration_tokens_total', 'Tokens fed to the model by one engine step (prompt tokens prefilled + sequences decoded)', ITERATION_TOKENS_BUCKETS);

    // Gauges read the engine's latest stats at scrape time rather than being pushed on every step.
    const gauge = (name: string, help: string, read: (s: EngineStats) => number) =>
      new Gauge({ name, help, registers, collect() { this.set(read(engineStats())); } });
    gauge('attune:num_requests_running', 'Sequences in the running batch', (s) => s.running);
    gauge('attune:num_requests_waiting', 'Sequences waiting for a batch slot', (s) => s.waiting);
    gauge('attune:kv_cache_usage_perc', 'Fraction of KV-cache slots in use (0-1)', (s) => (s.maxSlots > 0 ? s.slotsInUse / s.maxSlots : 0));

    this.promptTokens = new Counter({ name: 'attune:prompt_tokens_total', help: 'Prompt tokens processed', registers });
    this.generationTokens = new Counter({ name: 'attune:generation_tokens_total', help: 'Tokens generated', registers });
    this.success = new Counter({ name: 'attune:request_success_total', help: 'Sequences that finished, by finish reason', labelNames: ['finished_reason'], registers });
    this.failure = new Counter({ name: 'attune:request_failure_total', help: 'Generation requests that failed, by reason', labelNames: ['reason'], registers });
    this.calibrationRequests = new Counter({ name: 'attune:calibration_requests_total', help: 'Sequences run with a calibrator on', labelNames: ['calibrator'], registers });
    this.calibrationSeconds = new Histogram({
      name: 'attune:calibration_seconds',
      // The engine does not time calibrators separately yet, so this is an upper bound.
      help: 'Inference time (prefill + decode) of sequences with a calibrator on; an upper bound on its cost',
      labelNames: ['calibrator'],
      buckets: CALIBRATION_SECONDS_BUCKETS,
      registers,
    });
    this.reports = new ReportHistograms(this.registry);

    const metrics = this;
    new Gauge({ name: 'attune:http_connections', help: 'Open HTTP connections', registers, collect() { this.set(metrics.openConnections()); } });
    this.connectionsClosed = new Counter({
      name: 'attune:http_connections_closed_total',
      help: 'Connections the server closed or refused to protect itself, by reason',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of CONNECTION_CLOSE_REASONS) this.connectionsClosed.inc({ reason }, 0);

    // Zero series exist from the start, so a rate() over them works before the first failure.
    for (const reason of FAILURE_REASONS) this.failure.inc({ reason }, 0);
    for (const reason of ['stop', 'length']) this.success.inc({ finished_reason: reason }, 0);
  }

  /**
   * Declares a calibrator: its series are scraped (as zero) before its first use, and its config
   * keys are not mistaken for report observations.
   */
  declareCalibrator(id: string, configKeys: Iterable<string> = []): void {
    this.calibrationRequests.inc({ calibrator: id }, 0);
    this.reports.setConfigKeys(id, configKeys);
  }

  connectionClosed(reason: ConnectionCloseReason): void {
    this.connectionsClosed.inc({ reason });
  }

  /** Where the open-connection gauge reads its value at scrape time. */
  observeConnections(count: () => number): void {
    this.openConnections = count;
  }

  failed(reason: FailureReason): void {
    this.failure.inc({ reason });
  }

  /**
   * Metrics for one engine sequence (one choice); `arrivedAt` is the HTTP arrival (performance.now()),
   * `maxTokens` its resolved max_tokens.
   */
  startSequence(arrivedAt: number, calibrators: readonly string[], maxTokens: number): SequenceMetrics {
    return new SequenceMetrics(this, arrivedAt, calibrators, maxTokens);
  }

  /** One engine report: the tokens each of its steps fed the model. */
  observeSteps(tokensPerStep: readonly number[]): void {
    for (const t of tokensPerStep) this.iterationTokens.observe(t);
  }

  /**
   * A request that succeeded: its finished sequences count (a request that failed counts none of
   * its sequences as successes, whatever some of them had finished), by prompt in groups of n.
   */
  commitRequest(groups: readonly (readonly SequenceMetrics[])[]): void {
    for (const group of groups) {
      let most = 0;
      for (const seq of group) most = Math.max(most, seq.commit());
      this.requestN.observe(group.length);
      this.requestMaxGenerationTokens.observe(most);
    }
  }

  /** @internal used by SequenceMetrics */
  recordToken(first: boolean, seconds: number): void {
    (first ? this.ttft : this.itl).observe(seconds);
  }

  /** @internal used by SequenceMetrics: counted as they happen, like vLLM, so rate() is live. */
  recordTokens(prompt: number, generated: number): void {
    if (prompt) this.promptTokens.inc(prompt);
    if (generated) this.generationTokens.inc(generated);
  }

  /** @internal used by SequenceMetrics.commit */
  recordFinish(e: FinishEvent, e2eSeconds: number, calibrators: readonly string[], maxTokens: number): void {
    if (e.reason === 'abort') return;
    this.success.inc({ finished_reason: e.reason });
    const { queuedMs, encodeMs, prepassMs, prefillMs, decodeMs } = e.timing;
    this.e2e.observe(e2eSeconds);
    if (encodeMs > 0) this.encoder.observe(encodeMs / 1000);
    if (prepassMs > 0) this.prepass.observe(prepassMs / 1000);
    this.queue.observe(queuedMs / 1000);
    this.prefill.observe(prefillMs / 1000);
    this.decode.observe(decodeMs / 1000);
    this.inference.observe((prefillMs + decodeMs) / 1000);
    if (e.completionTokens > 1) this.timePerOutputToken.observe(decodeMs / 1000 / (e.completionTokens - 1));
    this.requestPromptTokens.observe(e.promptTokens);
    this.requestGenerationTokens.observe(e.completionTokens);
    this.requestMaxTokens.observe(maxTokens);
    for (const id of calibrators) {
      this.calibrationRequests.inc({ calibrator: id });
      this.calibrationSeconds.observe({ calibrator: id }, (prefillMs + decodeMs) / 1000);
    }
    for (const [id, report] of Object.entries(e.calibration)) this.reports.observe(id, report);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

export class SequenceMetrics {
  private last: number | null = null;
  private prompted = false;
  private finished: { event: FinishEvent; e2eSeconds: number } | null = null;

  constructor(
    private readonly metrics: ServerMetrics,
    private readonly arrivedAt: number,
    private readonly calibrators: readonly string[],
    private readonly maxTokens: number,
  ) {}

  /** The prompt was prefilled (the engine's first event for this sequence). */
  prefilled(promptTokens: number): void {
    if (this.prompted) return;
    this.prompted = true;
    this.metrics.recordTokens(promptTokens, 0);
  }

  tokens(count: number, now = performance.now()): void {
    if (count <= 0) return;
    this.metrics.recordTokens(0, count);
    const first = this.last === null;
    // Several tokens in one event arrived together: spread the interval evenly over them.
    const since = (now - (this.last ?? this.arrivedAt)) / 1000;
    if (first) this.metrics.recordToken(true, since);
    const rest = first ? count - 1 : count;
    for (let i = 0; i < rest; i++) this.metrics.recordToken(false, first ? 0 : since / count);
    this.last = now;
  }

  /** The sequence finished; it is counted once its request turns out to have succeeded (`commit`). */
  finish(e: FinishEvent, now = performance.now()): void {
    this.prefilled(e.promptTokens);
    this.finished = { event: e, e2eSeconds: (now - this.arrivedAt) / 1000 };
  }

  /** Counts the finished sequence; returns its generated tokens (0 if it never finished). */
  commit(): number {
    const f = this.finished;
    if (!f) return 0;
    this.finished = null;
    this.metrics.recordFinish(f.event, f.e2eSeconds, this.calibrators, this.maxTokens);
    return f.event.completionTokens;
  }
}
