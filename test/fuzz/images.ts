/**
 * Image headers and data URLs, well-formed and corrupt, for the image-part cases. Only headers are
 * built: the server reads dimensions from them and never decodes pixels.
 */
import type { Prng } from '../helpers/prng.js';

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

export function dataUrl(mime: string, bytes: Buffer): string {
  return `data:${mime};base64,${bytes.toString('base64')}`;
}

/**
 * A data or remote URL that the server must refuse for this text-only model: corrupt payloads, wrong
 * types, bombs, oversize images, and schemes it must not follow. (Even a perfect image is refused,
 * since stories260K has no vision tower, so every case here is a 4xx.)
 */
export function adversarialImageUrl(r: Prng, maxImageBytes: number): string {
  const header = (): Buffer =>
    r.pick([() => pngHeader(r.int(1, 64), r.int(1, 64)), () => jpegHeader(r.int(1, 64), r.int(1, 64)), () => webpHeader(r.int(1, 64), r.int(1, 64), r.pick(['VP8 ', 'VP8L', 'VP8X'] as const))])();
  const variants: (() => string)[] = [
    // Truncated headers: every prefix length of a real one.
    () => {
      const h = header();
      return dataUrl(r.pick(['image/png', 'image/jpeg', 'image/webp']), h.subarray(0, r.int(0, h.length - 1)));
    },
    () => dataUrl('image/png', pngHeader(r.int(1, 64), r.int(1, 64))),
    () => dataUrl('image/png', pngHeader(0, r.int(0, 10))),
    () => dataUrl('image/png', pngHeader(100_000, 100_000)),
    () => dataUrl('image/png', pngHeader(0xffffffff, 0xffffffff)),
    () => dataUrl('image/jpeg', jpegHeader(65535, 65535)),
    () => dataUrl('image/jpeg', jpegHeader(r.int(1, 64), r.int(1, 64), r.pick([0, 1, 2, 0xffff]))),
    () => dataUrl('image/webp', webpHeader(16384, 16384, 'VP8X')),
    () => dataUrl('image/png', jpegHeader(8, 8)),
    () => dataUrl('image/jpeg', pngHeader(8, 8)),
    () => dataUrl('image/png', Buffer.from(Array.from({ length: r.int(1, 64) }, () => r.int(0, 255)))),
    () => dataUrl(r.pick(['image/gif', 'image/svg+xml', 'text/html', 'application/octet-stream', '', 'image/', 'IMAGE/PNG', 'image/png ']), header()),
    () => `data:image/png;base64,${header().toString('base64').replace(/=+$/, '')}`,
    () => `data:image/png;base64,${header().toString('base64')}${r.pick(['!', ' ', '\n', '%', '==', '=a', '\u00e9'])}`,
    () => `data:image/png;base64,${r.pick(['', '=', '====', 'a', 'ab=', '!!!!', '\u0000\u0000\u0000\u0000'])}`,
    () => r.pick(['data:image/png;base64', 'data:image/png,', 'data:,', 'data:', 'data:image/png;charset=utf-8,abcd', `data:image/png;${'x;'.repeat(200)}base64,AAAA`]),
    () => `data:image/png;base64,${Buffer.concat([pngHeader(8, 8), Buffer.alloc(maxImageBytes + r.int(1, 4096))]).toString('base64')}`,
    () => r.pick(['http://127.0.0.1:1/x.png', 'https://example.invalid/cat.png', 'HTTP://10.0.0.1/a.png', 'file:///etc/passwd', 'ftp://example.com/a.png', 'javascript:alert(1)', '//example.com/a.png', '/etc/passwd', 'x']),
  ];
  return r.pick(variants)();
}
