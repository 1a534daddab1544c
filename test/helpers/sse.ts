/**
 * A real SSE parser over a fetch Response body: yields each event's `data` as it arrives (chunk by
 * chunk, split on blank lines), and counts comment lines (keep-alives).
 */

export interface SseEvent {
  data: string;
}

export interface SseReader {
  events: AsyncGenerator<SseEvent>;
  comments: () => number;
}

export function readSse(res: Response): SseReader {
  let comments = 0;
  async function* events(): AsyncGenerator<SseEvent> {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) comments++;
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) yield { data: data.join('\n') };
      }
    }
  }
  return { events: events(), comments: () => comments };
}

/** All JSON chunks of a stream up to `[DONE]`; `done` tells whether `[DONE]` came. */
export async function collectSse<T = unknown>(res: Response): Promise<{ chunks: T[]; done: boolean; comments: number }> {
  const reader = readSse(res);
  const chunks: T[] = [];
  let done = false;
  for await (const e of reader.events) {
    if (e.data === '[DONE]') {
      done = true;
      continue;
    }
    chunks.push(JSON.parse(e.data) as T);
  }
  return { chunks, done, comments: reader.comments() };
}

export function postStream(url: string, body: unknown, init: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: JSON.stringify(body),
    signal: init.signal,
  });
}
