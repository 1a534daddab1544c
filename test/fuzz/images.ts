/**
 * Image headers and data URLs, well-formed and corrupt, for the image-part cases. Only headers are
 * built: the server reads dimensions from them and never decodes pixels.
 */
import type { Prng } from '../helpers/prng.js';

import { jpegHeader, pngHeader, webpHeader } from '../helpers/image-headers.js';

export { jpegHeader, pngHeader, webpHeader };

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
