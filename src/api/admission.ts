/**
 * Admission control: a bounded queue in front of the engine, counted in sequences (one per choice)
 * and in prompt tokens. Requests are refused at the door (429 + Retry-After) instead of piling up
 * unboundedly as in vLLM's default, and refused (503) while the engine is not ready or the server
 * drains.
 *
 * A sequence is "queued" from admission until the engine reports its first event; after that it
 * holds a batch slot. A sequence whose calibrators add auxiliary sequences (a guidance companion)
 * counts as that many slots. The request bound is slots + maxQueuedRequests admitted sequences; the token
 * bound covers queued prompt tokens only. Either bound lets one request in when nothing is queued,
 * so a single large request is never starved by its own size.
 */
import { overloaded, unavailable } from './errors.js';

export interface AdmissionLimits {
  /** The engine's batch slots (maxBatch). */
  slots: number;
  maxQueuedRequests: number;
  maxQueuedTokens: number;
  retryAfterSeconds: number;
}

/** Why the server does not take work now, or null when it does. */
export type ServingCheck = () => { reason: 'draining' | 'not_ready'; message: string } | null;

export class Admission {
  private admittedSeqs = 0;
  private queuedSeqs = 0;
  private queuedTokensTotal = 0;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly serving: ServingCheck,
  ) {}

  get admitted(): number {
    return this.admittedSeqs;
  }

  get queued(): number {
    return this.queuedSeqs;
  }

  get queuedTokens(): number {
    return this.queuedTokensTotal;
  }

  /** The cheap check made before a body is even parsed. Reserves nothing. */
  gate(): void {
    const down = this.serving();
    if (down) {
      // A draining server asks clients to reconnect, so keep-alive sockets move to another replica.
      throw unavailable(down.message, this.limits.retryAfterSeconds, down.reason === 'draining' ? { connection: 'close' } : {});
    }
    if (this.admittedSeqs > 0 && this.admittedSeqs >= this.capacity) throw this.full('requests');
  }

  /** Reserves room for `sequences` engine sequences of `slotsEach` slots; release the ticket when they are done. */
  admit(sequences: number, slotsEach = 1): Ticket {
    this.gate();
    const slots = sequences * slotsEach;
    if (this.admittedSeqs > 0 && this.admittedSeqs + slots > this.capacity) throw this.full('requests');
    this.admittedSeqs += slots;
    this.queuedSeqs += slots;
    return new Ticket(this, sequences, slotsEach);
  }

  private get capacity(): number {
    return this.limits.slots + this.limits.maxQueuedRequests;
  }

  /** @internal Ticket's side of the accounting. */
  reserveTokens(tokens: number): void {
    if (this.queuedTokensTotal > 0 && this.queuedTokensTotal + tokens > this.limits.maxQueuedTokens) throw this.full('tokens');
    this.queuedTokensTotal += tokens;
  }

  /** @internal */
  leaveQueue(slots: number, tokens: number): void {
    this.queuedSeqs -= slots;
    this.queuedTokensTotal -= tokens;
  }

  /** @internal */
  releaseSequences(count: number): void {
    this.admittedSeqs -= count;
  }

  private full(what: 'requests' | 'tokens') {
    const detail =
      what === 'requests'
        ? `${this.admittedSeqs} sequences are admitted and the limit is ${this.capacity} (batch ${this.limits.slots} + max_queued_requests ${this.limits.maxQueuedRequests})`
        : `${this.queuedTokensTotal} prompt tokens are queued and the limit is ${this.limits.maxQueuedTokens} (max_queued_tokens)`;
    return overloaded(`the server is at capacity: ${detail}; retry later`, this.limits.retryAfterSeconds);
  }
}

/** One request's reservation. Every method is idempotent per sequence, so cleanup paths can overlap. */
export class Ticket {
  private tokens: number[] = [];
  private readonly started: boolean[];
  private released = false;

  constructor(
    private readonly admission: Admission,
    private readonly sequences: number,
    private readonly slotsEach: number,
  ) {
    this.started = new Array<boolean>(sequences).fill(false);
  }

  /** Adds the sequences' prompt tokens to the queue; throws 429 when they do not fit. */
  reserveTokens(perSequence: readonly number[]): void {
    const total = perSequence.reduce((a, b) => a + b, 0);
    this.admission.reserveTokens(total);
    this.tokens = [...perSequence];
  }

  /** The engine reported sequence `i`'s first event: it holds a slot now. */
  markStarted(i: number): void {
    if (this.released || this.started[i]) return;
    this.started[i] = true;
    this.admission.leaveQueue(this.slotsEach, this.tokens[i] ?? 0);
  }

  release(): void {
    if (this.released) return;
    for (let i = 0; i < this.sequences; i++) this.markStarted(i);
    this.released = true;
    this.admission.releaseSequences(this.sequences * this.slotsEach);
  }
}
