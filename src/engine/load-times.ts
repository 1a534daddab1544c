/** Where a model's load time went, as the worker reports it and the CLI prints it. */
export interface LoadTimes {
  /** Hashing, reading and encoding the checkpoint into the weight store (a stat and a small read when cached). */
  readMs: number;
  /** onnxruntime packing the linear weights into the store (0 when cached). */
  prepackMs: number;
  /** Building graphs (reading their cached description when cached). */
  compileMs: number;
  /** Creating onnxruntime sessions. */
  sessionMs: number;
  /** The weight store came from the cache. */
  hit: boolean;
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** "read 0.01 s, compile 0.02 s, sessions 0.31 s (weights from the cache)". */
export function formatLoadTimes(t: LoadTimes): string {
  const compile = t.prepackMs > 0 ? `compile ${s(t.compileMs + t.prepackMs)} (pre-packing weights ${s(t.prepackMs)})` : `compile ${s(t.compileMs)}`;
  return `read ${s(t.readMs)}, ${compile}, sessions ${s(t.sessionMs)}${t.hit ? ' (weights from the cache)' : ''}`;
}
