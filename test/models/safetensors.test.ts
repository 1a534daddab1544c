import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openSafetensors, safetensorsFromBytes } from '../../models/checkpoint/safetensors.js';
import {
  encodeSafetensors,
  floatToBf16Bits,
  floatToHalfBits,
  writeSafetensors,
} from '../../models/checkpoint/safetensors-writer.js';
import { withTempDir } from '../helpers/temp-dir.js';

/** Builds a file from a literal header object and a data section, to craft malformed files. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Uint8Array {
  const h = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const values = Float32Array.from([0, -0, 1, -2.5, 3.14159, 65504, 1e-7, -1e-3, 123456.789, Infinity, -Infinity]);

describe('safetensors', () => {
  it('round-trips F32 exactly and F16/BF16 to their rounded values', async () => {
    const file = encodeSafetensors(
      {
        a: { dtype: 'F32', shape: [values.length], data: values },
        h: { dtype: 'F16', shape: [values.length], data: values },
        b: { dtype: 'BF16', shape: [1, values.length], data: values },
      },
      { format: 'pt' },
    );
    assert.equal((file.length - 8 - Number(new DataView(file.buffer).getBigUint64(0, true))) % 2, 0);
    assert.equal(Number(new DataView(file.buffer).getBigUint64(0, true)) % 8, 0, 'header is padded to 8 bytes');
    const st = safetensorsFromBytes(file);
    assert.deepEqual(st.metadata, { format: 'pt' });
    assert.deepEqual(st.names().sort(), ['a', 'b', 'h']);
    assert.deepEqual(st.info('b').shape, [1, values.length]);
    assert.deepEqual(await st.readFloat32('a'), values);
    const h = await st.readFloat32('h');
    const b = await st.readFloat32('b');
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const tol = Math.abs(v) * 2 ** -10;
      if (Math.abs(v) >= 6e-5 && Math.abs(v) <= 65504) assert.ok(Math.abs(h[i]! - v) <= tol, `f16 ${v} -> ${h[i]}`);
      if (Number.isFinite(v)) assert.ok(Math.abs(b[i]! - v) <= Math.abs(v) * 2 ** -8, `bf16 ${v} -> ${b[i]}`);
    }
    assert.equal(h[5], 65504);
    assert.equal(h[8], Infinity, "beyond the f16 range");
    assert.equal(h[9], Infinity);
    assert.equal(b[10], -Infinity);
    assert.ok(Object.is(h[1], -0));
  });

  it('rounds to nearest even when narrowing', () => {
    assert.equal(floatToBf16Bits(1), 0x3f80);
    // 1 + 2^-8 is halfway between two bf16 values: ties go to the even mantissa (1.0).
    assert.equal(floatToBf16Bits(1 + 2 ** -8), 0x3f80);
    assert.equal(floatToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(floatToBf16Bits(NaN) & 0x7fc0, 0x7fc0);
    assert.equal(floatToHalfBits(1), 0x3c00);
    assert.equal(floatToHalfBits(65520), 0x7c00, 'rounds up to infinity');
    assert.equal(floatToHalfBits(2 ** -24), 0x0001, 'smallest subnormal');
    assert.equal(floatToHalfBits(2 ** -25), 0x0000, 'tie rounds to even zero');
    assert.equal(floatToHalfBits(1.5 * 2 ** -25), 0x0001);
    assert.equal(floatToHalfBits(-2), 0xc000);
    assert.equal(floatToHalfBits(NaN) & 0x7e00, 0x7e00);
  });

  it('rejects malformed headers with clear errors', () => {
    const f32 = (n: number) => new Uint8Array(n * 4);
    assert.throws(() => safetensorsFromBytes(new Uint8Array(4)), /shorter than 8 bytes/);
    assert.throws(() => safetensorsFromBytes(rawFile({}, new Uint8Array(0), 200_000_000n)), /over the 100000000-byte limit/);
    assert.throws(() => safetensorsFromBytes(rawFile({}, new Uint8Array(0), 50n)), /claims 50 bytes but the file has/);
    assert.throws(() => safetensorsFromBytes(rawFile({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(3))), /run past the 12-byte data section/);
    assert.throws(() => safetensorsFromBytes(rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, f32(4))), /needs 12 bytes, offsets give 16/);
    assert.throws(() => safetensorsFromBytes(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, f32(2))), /reversed/);
    assert.throws(() => safetensorsFromBytes(rawFile({ x: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, f32(1))), /unknown dtype "Q4"/);
    assert.throws(() => safetensorsFromBytes(rawFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1))), /shape must be/);
    assert.throws(
      () =>
        safetensorsFromBytes(
          rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)),
        ),
      /overlaps/,
    );
    const notJson = rawFile({});
    notJson[8] = 0x5b; // '[' breaks the JSON
    assert.throws(() => safetensorsFromBytes(notJson), /not UTF-8 JSON/);
  });

  it('reads only float dtypes as weights, naming the tensor otherwise', async () => {
    const st = safetensorsFromBytes(rawFile({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16)));
    assert.deepEqual(st.info('ids').shape, [2]);
    await assert.rejects(st.readFloat32('ids'), /ids: dtype I64 is not supported as a weight/);
    await assert.rejects(st.readFloat32('nope'), /no tensor named nope/);
    const f64 = new Float64Array([1.5, -2]);
    const st64 = safetensorsFromBytes(rawFile({ d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(f64.buffer)));
    assert.deepEqual(await st64.readFloat32('d'), Float32Array.from([1.5, -2]));
  });

  it('opens files, directories and sharded checkpoints from disk', async () => {
    await withTempDir(async (dir) => {
      const a = Float32Array.from({ length: 6 }, (_, i) => i / 3);
      const b = Float32Array.from([7, 8]);
      await writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { a: { dtype: 'F32', shape: [2, 3], data: a } });
      await writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), { b: { dtype: 'BF16', shape: [2], data: b } });
      const index = { metadata: { total_size: 28 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } };
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
      const st = await openSafetensors(dir);
      try {
        assert.deepEqual(st.names().sort(), ['a', 'b']);
        assert.deepEqual(await st.readFloat32('a'), a);
        assert.deepEqual(await st.readFloat32('b'), b);
        assert.equal(st.info('b').dtype, 'BF16');
      } finally {
        await st.close();
      }
      const single = await openSafetensors(join(dir, 'model-00001-of-00002.safetensors'));
      assert.deepEqual(await single.readFloat32('a'), a);
      await single.close();

      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { c: 'model-00001-of-00002.safetensors' } }));
      await assert.rejects(openSafetensors(dir), /c is mapped to model-00001-of-00002.safetensors, which does not contain it/);
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../x.safetensors' } }));
      await assert.rejects(openSafetensors(dir), /not a plain file name/);
    });
  });

  it('detects a truncated file on disk', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'm.safetensors');
      await writeSafetensors(path, { a: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
      const full = await readFile(path);
      await writeFile(path, full.subarray(0, full.length - 4));
      await assert.rejects(openSafetensors(path), /run past the 12-byte data section/);
    });
  });

  it('refuses to write a tensor whose shape disagrees with its data', async () => {
    assert.throws(() => encodeSafetensors({ a: { dtype: 'F32', shape: [3], data: new Float32Array(4) } }), /a: shape \[3\] does not hold 4 values/);
  });
});
