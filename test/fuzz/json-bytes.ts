/**
 * JSON bodies as bytes, with holes for what JSON.stringify refuses to write: bare NaN and Infinity
 * tokens, 10k-level nesting, bytes that are not UTF-8. A `Raw` value is copied into the output
 * verbatim; everything else is written as JSON.stringify would write it.
 */

export class Raw {
  constructor(readonly bytes: Buffer) {}

  static text(s: string): Raw {
    return new Raw(Buffer.from(s, 'utf8'));
  }

  /** A JSON string literal with raw bytes spliced in after `before` (invalid UTF-8 inside a string). */
  static stringWithBytes(before: string, bytes: readonly number[], after = ''): Raw {
    const open = JSON.stringify(before).slice(0, -1);
    const close = JSON.stringify(after).slice(1);
    return new Raw(Buffer.concat([Buffer.from(open, 'utf8'), Buffer.from(bytes), Buffer.from(close, 'utf8')]));
  }
}

/** Arrays nested `depth` deep around `inner` (e.g. `[[[1]]]`). */
export function deepArray(depth: number, inner = '1'): Raw {
  return Raw.text(`${'['.repeat(depth)}${inner}${']'.repeat(depth)}`);
}

/** Objects nested `depth` deep under `key` (e.g. `{"a":{"a":1}}`). */
export function deepObject(depth: number, key = 'a', inner = '1'): Raw {
  return Raw.text(`${`{"${key}":`.repeat(depth)}${inner}${'}'.repeat(depth)}`);
}

export function encodeJson(value: unknown): Buffer {
  const parts: Buffer[] = [];
  write(value, parts);
  return Buffer.concat(parts);
}

function write(v: unknown, out: Buffer[]): void {
  if (v instanceof Raw) {
    out.push(v.bytes);
    return;
  }
  if (Array.isArray(v)) {
    out.push(Buffer.from('['));
    v.forEach((x, i) => {
      if (i) out.push(Buffer.from(','));
      write(x === undefined ? null : x, out);
    });
    out.push(Buffer.from(']'));
    return;
  }
  if (typeof v === 'object' && v !== null) {
    out.push(Buffer.from('{'));
    let first = true;
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      if (!first) out.push(Buffer.from(','));
      first = false;
      out.push(Buffer.from(`${JSON.stringify(k)}:`, 'utf8'));
      write(x, out);
    }
    out.push(Buffer.from('}'));
    return;
  }
  out.push(Buffer.from(JSON.stringify(v) ?? 'null', 'utf8'));
}
