/**
 * Reading OpenAI-style SSE as a load generator sees it. Two views of the same stream:
 *   - the complete body, once the response ended: [DONE] seen, error events, content chunks, and
 *     the usage chunk (`stream_options.include_usage`), which is the exact generated-token count
 *     (a chunk may carry several tokens, or none when text is held back for a stop string);
 *   - the raw socket bytes as they arrive, to time the first content chunk. Those bytes still carry
 *     the HTTP headers and chunked-encoding size lines; neither ever starts with "data:", and a
 *     server write is never split by chunk framing, so reading whole `data:` lines is exact.
 */

export interface StreamSummary {
  /** `data: [DONE]` arrived. */
  done: boolean;
  /** Chunks that carried generated text. */
  contentChunks: number;
  /** From the usage chunk; null when the stream had none. */
  completionTokens: number | null;
  /** The message of an in-stream error event, if one came. */
  error: string | null;
}

interface Chunk {
  choices?: { text?: string; delta?: { content?: string | null } }[];
  usage?: { completion_tokens?: number } | null;
  error?: { message?: string };
}

function dataOf(line: string): string | null {
  if (!line.startsWith('data:')) return null;
  return line.slice(line.startsWith('data: ') ? 6 : 5).replace(/\r$/, '');
}

function parse(data: string): Chunk | null {
  try {
    const v: unknown = JSON.parse(data);
    return typeof v === 'object' && v !== null ? (v as Chunk) : null;
  } catch {
    return null;
  }
}

/** Completions chunks carry `text`, chat chunks `delta.content`; the role-only opener has neither. */
function hasContent(chunk: Chunk): boolean {
  return (chunk.choices ?? []).some((c) => (c.text ?? c.delta?.content ?? '').length > 0);
}

export function summarizeSse(body: string): StreamSummary {
  const summary: StreamSummary = { done: false, contentChunks: 0, completionTokens: null, error: null };
  for (const line of body.split('\n')) {
    const data = dataOf(line);
    if (data === null) continue;
    if (data === '[DONE]') {
      summary.done = true;
      continue;
    }
    const chunk = parse(data);
    if (!chunk) {
      summary.error ??= `unparseable event: ${data.slice(0, 80)}`;
      continue;
    }
    if (chunk.error) summary.error ??= chunk.error.message ?? 'error event';
    if (typeof chunk.usage?.completion_tokens === 'number') summary.completionTokens = chunk.usage.completion_tokens;
    if (hasContent(chunk)) summary.contentChunks++;
  }
  return summary;
}

/** Watches raw response bytes for the first chunk with generated text. */
export class FirstContentScanner {
  private partial = '';
  private found = false;

  reset(): void {
    this.partial = '';
    this.found = false;
  }

  /** True once (and from then on) a content chunk has been seen. */
  push(raw: string): boolean {
    if (this.found) return true;
    const lines = (this.partial + raw).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const data = dataOf(line);
      if (data === null || data === '[DONE]') continue;
      const chunk = parse(data);
      if (chunk && hasContent(chunk)) {
        this.found = true;
        this.partial = '';
        return true;
      }
    }
    return false;
  }
}
