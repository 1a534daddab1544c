/**
 * Stop-string matching over streamed text. Released text never contains the start of a stop string
 * that could still complete: only the longest suffix that is a proper prefix of some stop string is
 * held back (tighter than vLLM's fixed `max(len(stop)) − 1` characters, and just as safe).
 */

export interface StopScan {
  /** Text that may be released now. */
  text: string;
  /** The stop string that matched, or null. After a match the matcher accepts no more text. */
  matched: string | null;
}

export class StopStringMatcher {
  private readonly stops: readonly string[];
  private held = '';
  private done = false;

  /** Empty stop strings are ignored: they would match before any text. */
  constructor(
    stops: readonly string[],
    private readonly includeInOutput: boolean,
  ) {
    this.stops = [...new Set(stops.filter((s) => s.length > 0))];
  }

  /** Text currently held back as a possible stop-string start. */
  get heldText(): string {
    return this.held;
  }

  push(chunk: string): StopScan {
    if (this.done) throw new Error('StopStringMatcher: push after a stop string matched');
    if (this.stops.length === 0) return { text: chunk, matched: null };
    const buf = this.held + chunk;

    // Earliest match wins (first listed on a tie), i.e. the stop string that completed first in the text.
    let at = -1;
    let which: string | null = null;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    if (which !== null) {
      this.held = '';
      this.done = true;
      return { text: buf.slice(0, this.includeInOutput ? at + which.length : at), matched: which };
    }

    const keep = this.partialMatchLength(buf);
    this.held = keep > 0 ? buf.slice(buf.length - keep) : '';
    return { text: keep > 0 ? buf.slice(0, buf.length - keep) : buf, matched: null };
  }

  /** Releases whatever is held back, for when the generation ends without a match. */
  flush(): string {
    const t = this.held;
    this.held = '';
    return t;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private partialMatchLength(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let len = Math.min(s.length - 1, buf.length); len > best; len--) {
        if (suffixIsPrefix(buf, s, len)) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}

function suffixIsPrefix(buf: string, stop: string, len: number): boolean {
  const off = buf.length - len;
  for (let j = 0; j < len; j++) if (buf.charCodeAt(off + j) !== stop.charCodeAt(j)) return false;
  return true;
}
