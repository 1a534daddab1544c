/** Positioned reads of any length: one read() may return fewer bytes, and is capped near 2 GiB. */
import type { FileHandle } from 'node:fs/promises';

/** Reads exactly `length` bytes at `position` into a fresh array. */
export async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, Math.min(length - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return buf;
}
