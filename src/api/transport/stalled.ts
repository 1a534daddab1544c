/**
 * Responses the write watchdog cut because their client read nothing for the write timeout. The
 * generation run reads this when the response closes, to tell that cut from a client that left.
 */
import type { ServerResponse } from 'node:http';

const cut = new WeakSet<ServerResponse>();

export function markCutForNotReading(res: ServerResponse): void {
  cut.add(res);
}

export function wasCutForNotReading(res: ServerResponse): boolean {
  return cut.has(res);
}
