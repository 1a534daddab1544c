/**
 * Image headers built byte by byte, for tests of the image checks: the server reads dimensions from
 * headers and never decodes pixels, so a header is all an image needs to be.
 */
function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.concat([u32be(width), u32be(height), Buffer.from([8, 6, 0, 0, 0])]);
  // The CRC is not checked by a header reader; a fixed one keeps the bytes deterministic.
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), u32be(13), Buffer.from('IHDR'), ihdr, u32be(0)]);
}

export function jpegHeader(width: number, height: number, sofLength = 17): Buffer {
  const app0 = Buffer.from([0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
  const sof = Buffer.from([0xff, 0xc0, sofLength >> 8, sofLength & 0xff, 8, height >> 8, height & 0xff, width >> 8, width & 0xff, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), app0, sof]);
}

export function webpHeader(width: number, height: number, chunk: 'VP8 ' | 'VP8L' | 'VP8X'): Buffer {
  const b = Buffer.alloc(40);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(32, 4);
  b.write('WEBP', 8, 'ascii');
  b.write(chunk, 12, 'ascii');
  b.writeUInt32LE(20, 16);
  if (chunk === 'VP8 ') {
    b[23] = 0x9d;
    b[24] = 0x01;
    b[25] = 0x2a;
    b.writeUInt16LE(width & 0x3fff, 26);
    b.writeUInt16LE(height & 0x3fff, 28);
  } else if (chunk === 'VP8L') {
    b[20] = 0x2f;
    b.writeUInt32LE((((width - 1) & 0x3fff) | (((height - 1) & 0x3fff) << 14)) >>> 0, 21);
  } else {
    b.writeUIntLE((width - 1) & 0xffffff, 24, 3);
    b.writeUIntLE((height - 1) & 0xffffff, 27, 3);
  }
  return b;
}
