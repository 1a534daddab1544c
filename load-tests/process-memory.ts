/** This process's memory as Linux accounts it (/proc/self/smaps_rollup), in bytes. */
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface MemoryFigures {
  /** Resident pages, each counted once per mapping that maps it. */
  rss: number;
  /** Proportional set size: each resident page divided among the mappings that map it, so a file
   *  mapped by several sessions counts once in all: the physical memory this process costs. */
  pss: number;
  /** Private memory (heap, arenas, copies): what the kernel cannot drop and re-read from a file. */
  anonymous: number;
}

export function memoryFigures(): MemoryFigures {
  const text = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('Rss'), pss: kb('Pss'), anonymous: kb('Anonymous') };
}

/** Peak RSS since the last resetPeakRss() (VmHWM). */
export function peakRss(): number {
  const text = readFileSync('/proc/self/status', 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN) * 1024;
}

/** Starts peak RSS over from the current RSS (Linux: writing 5 to clear_refs). */
export function resetPeakRss(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

/**
 * memoryFigures() after a full garbage collection, so freed JavaScript objects (and the array
 * buffers they held) do not count: V8 otherwise collects when it likes, and tens of MB move between
 * two readings. The collector is reached through V8's flag, turned on at run time.
 */
export function settledMemoryFigures(): MemoryFigures {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return memoryFigures();
}
