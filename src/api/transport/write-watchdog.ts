/**
 * Responses whose client stopped reading. Node keeps whatever the kernel will not take in the
 * socket's own buffer, so a client that never reads holds its whole response in the server's memory
 * for as long as it keeps the connection (20 unread streams held 6.3 MB each). A watched socket that
 * has bytes waiting and has flushed none of them for `timeoutMs` is reported and destroyed.
 *
 * Progress is the count of bytes the socket has finished writing (bytesWritten counts bytes handed
 * to it; writableLength those not yet written out). Large bodies are sent in slices (see
 * `slicedBody`) so that a client reading slowly but steadily shows progress slice by slice.
 */
import { Readable } from 'node:stream';
import type { Socket } from 'node:net';

interface Watch {
  flushed: number;
  /** performance.now() of the last progress, or of the moment bytes started waiting. */
  since: number;
  waiting: boolean;
  onStall: () => void;
}

export class WriteWatchdog {
  private readonly watches = new Map<Socket, Watch>();
  private readonly timer: NodeJS.Timeout | null;

  constructor(private readonly timeoutMs: number) {
    this.timer = timeoutMs > 0 ? setInterval(() => this.check(), Math.max(20, Math.min(1000, Math.floor(timeoutMs / 4)))) : null;
    this.timer?.unref();
  }

  /** Watches `socket` until `unwatch`; `onStall` runs once if its client stops reading. */
  watch(socket: Socket, onStall: () => void): void {
    if (!this.timer) return;
    this.watches.set(socket, { flushed: flushedBytes(socket), since: performance.now(), waiting: false, onStall });
  }

  unwatch(socket: Socket): void {
    this.watches.delete(socket);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.watches.clear();
  }

  private check(): void {
    const now = performance.now();
    for (const [socket, w] of this.watches) {
      if (socket.destroyed) {
        this.watches.delete(socket);
        continue;
      }
      const flushed = flushedBytes(socket);
      const waiting = socket.writableLength > 0;
      if (flushed !== w.flushed || !waiting || !w.waiting) {
        w.flushed = flushed;
        w.since = now;
        w.waiting = waiting;
        continue;
      }
      if (now - w.since >= this.timeoutMs) {
        this.watches.delete(socket);
        w.onStall();
      }
    }
  }
}

function flushedBytes(socket: Socket): number {
  return socket.bytesWritten - socket.writableLength;
}

/** Above this, a body is written in slices so that the watchdog sees a slow reader's progress. */
export const SLICE_BYTES = 64 * 1024;

/** A large serialized body as a stream of slices, each written (and flushed) on its own. */
export function slicedBody(payload: string | Buffer): Readable {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  let at = 0;
  return new Readable({
    read() {
      if (at >= bytes.length) {
        this.push(null);
        return;
      }
      const next = Math.min(bytes.length, at + SLICE_BYTES);
      this.push(bytes.subarray(at, next));
      at = next;
    },
  });
}
