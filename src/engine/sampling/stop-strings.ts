/**
 * Stop-string matching over streamed text, with vLLM's semantics (`check_stop_strings` in
 * vllm/v1/engine/detokenizer.py): each time a token adds text, the stop strings are tried in the order
 * the request lists them, and the first one that occurs *ending within the new text* wins, at its
 * first such occurrence. Not the occurrence that starts earliest, nor the one that completes first:
 * with `stop: ["cd", "bc"]` and new text "abcd", vLLM stops at "cd" (output "ab"), because "cd" is
 * listed first. With include_stop_str_in_output the text is cut after the stop string, else before.
 *
 * Released text never contains the start of a stop string that could still complete: only the
 * longest suffix that is a proper prefix of some stop string is held back (tighter than vLLM's fixed
 * `max(len(stop)) − 1` characters, and just as safe). Matching can be switched off for a push (vLLM's
 * min_tokens: text from the first min_tokens tokens cannot end a match), while held text is still
 * tracked so that a stop string straddling that boundary is found once matching is on.
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

  /** Adds new text; `match: false` releases and holds text as usual but lets nothing match. */
  push(chunk: string, match = true): StopScan {
    if (this.done) throw new Error('StopStringMatcher: push after a stop string matched');
    if (this.stops.length === 0) return { text: chunk, matched: null };
    const buf = this.held + chunk;

    if (match && chunk.length > 0) {
      for (const s of this.stops) {
        // Only occurrences that end within the new text: earlier text was already searched.
        const at = buf.indexOf(s, Math.max(0, buf.length - chunk.length + 1 - s.length));
        if (at < 0) continue;
        this.held = '';
        this.done = true;
        return { text: buf.slice(0, this.includeInOutput ? at + s.length : at), matched: s };
      }
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
