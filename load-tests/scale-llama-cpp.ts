/**
 * llama.cpp's side of `npm run bench:scale`: the same llama2.c checkpoint converted by llama.cpp's own
 * converter (llama-convert-llama2c-to-ggml), quantized by llama-quantize, and timed by llama-bench
 * (single-stream decode, 128-token prefill) and llama-batched-bench (8 sequences decoding together).
 * Peak RSS is read from /proc while each tool runs. `LLAMA_CPP_DIR` is a llama.cpp checkout with a
 * CMake build in `build/` (or the folder holding the binaries themselves).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { WeightFormat } from '../models/onnx/weight-format.js';
import { BATCH, DECODE_TOKENS, PREFILL_TOKENS, type LlamaSample } from './scale-workload.js';

/** llama.cpp's type at the precision each attune format matches. */
export const LLAMA_TYPE: Record<WeightFormat, string> = { f32: 'F32', f16: 'F16', int8: 'Q8_0', int4: 'Q4_0' };

function binary(dir: string, name: string): string {
  for (const p of [join(dir, 'build', 'bin', name), join(dir, 'bin', name), join(dir, name)]) if (existsSync(p)) return p;
  throw new Error(`LLAMA_CPP_DIR=${dir}: no ${name} (build it: cmake -B build && cmake --build build --target llama-bench llama-batched-bench llama-quantize llama-convert-llama2c-to-ggml)`);
}

/** `<model dir>/<type>.gguf`, converted and quantized once and then reused. */
export async function prepareGguf(llamaDir: string, modelDir: string, format: WeightFormat): Promise<string> {
  const f32 = join(modelDir, 'F32.gguf');
  if (!existsSync(f32)) {
    await promisify(execFile)(binary(llamaDir, 'llama-convert-llama2c-to-ggml'), [
      '--copy-vocab-from-model', join(modelDir, 'tok32000.bin'), '--llama2c-model', join(modelDir, 'model.bin'), '--llama2c-output-model', f32,
    ], { maxBuffer: 1 << 26 });
  }
  const type = LLAMA_TYPE[format];
  const out = join(modelDir, `${type}.gguf`);
  if (!existsSync(out)) await promisify(execFile)(binary(llamaDir, 'llama-quantize'), [f32, out, type], { maxBuffer: 1 << 26 });
  return out;
}

/** Runs a tool to completion, sampling its RSS every 50 ms; returns stdout and the peak. */
function runSampled(bin: string, args: string[]): Promise<{ stdout: string; peakRss: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', peak = 0;
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setInterval(() => {
      try {
        const kb = Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        peak = Math.max(peak, kb * 1024);
      } catch {
        // the process already exited
      }
    }, 50);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      if (code === 0) resolve({ stdout, peakRss: peak });
      else reject(new Error(`${bin} exited with ${code}: ${stderr.slice(-2000)}`));
    });
  });
}

/** One run of each: llama-bench's decode and prefill, llama-batched-bench's 8 sequences. */
export async function measureLlamaCpp(llamaDir: string, gguf: string, threads: number): Promise<LlamaSample> {
  const bench = await runSampled(binary(llamaDir, 'llama-bench'), [
    '-m', gguf, '-p', String(PREFILL_TOKENS), '-n', String(DECODE_TOKENS), '-t', String(threads), '-r', '1', '-o', 'json',
  ]);
  const rows = JSON.parse(bench.stdout) as { n_prompt: number; n_gen: number; avg_ts: number }[];
  const pp = rows.find((r) => r.n_prompt === PREFILL_TOKENS && r.n_gen === 0)!;
  const tg = rows.find((r) => r.n_gen === DECODE_TOKENS && r.n_prompt === 0)!;
  // Eight sequences of one prompt token each, decoding together (attune's batch-8 figure).
  const batched = await runSampled(binary(llamaDir, 'llama-batched-bench'), [
    '-m', gguf, '-c', String(BATCH * (DECODE_TOKENS + 8)), '-npp', '1', '-ntg', String(DECODE_TOKENS), '-npl', String(BATCH), '-t', String(threads), '--output-format', 'jsonl',
  ]);
  const line = batched.stdout.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`llama-batched-bench printed no result for ${gguf}`);
  const speedTg = (JSON.parse(line) as { speed_tg: number }).speed_tg;
  return { decode1: tg.avg_ts, batch8: speedTg, prefill128: pp.avg_ts, peakRss: bench.peakRss };
}
