/**
 * Sizes of a JSON body, counted on its bytes as they arrive, before anything is parsed: entries per
 * array or object, values in all, and nesting depth. No field of this API takes more entries than
 * the context length (a token-id prompt), so a body with a million-key object or an eight-million
 * element array is refused after its first few kilobytes past the limit, instead of being parsed
 * into millions of values and then validated one by one (which held the event loop for seconds).
 *
 * This is not a parser: it does not build values or check the grammar (JSON.parse still does, once
 * the body is complete and known to be of bounded size). It only follows strings, so that brackets
 * and commas inside them do not count. JSON libraries build values or emit tokens; none counts
 * entries without doing that work, which is what has to be avoided here.
 */
import { fieldPath } from '../errors.js';

export interface JsonShapeLimits {
  /** Entries in one array or object. */
  maxEntries: number;
  /** Values in the whole body (every array element, object member and nested container). */
  maxValues: number;
  maxDepth: number;
}

export interface ShapeViolation {
  /** Dotted path of the container at fault, '' for the body itself. */
  path: string;
  message: string;
}

interface Frame {
  isObject: boolean;
  entries: number;
  /** Object: the key of the member being read (for error paths). */
  key: string;
  expectKey: boolean;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MAX_KEY_CAPTURE = 64;

export class JsonShapeScanner {
  private readonly stack: Frame[] = [];
  private values = 0;
  private inString = false;
  private escaped = false;
  private inScalar = false;
  private capture: number[] | null = null;

  constructor(private readonly limits: JsonShapeLimits) {}

  /** Scans the next chunk; returns the first limit it breaks, if any (then stop feeding it). */
  push(chunk: Uint8Array): ShapeViolation | null {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) {
          this.inString = false;
          if (this.capture) {
            this.top!.key = Buffer.from(this.capture).toString('utf8');
            this.capture = null;
          }
          continue;
        }
        if (this.capture && this.capture.length < MAX_KEY_CAPTURE) this.capture.push(c);
        continue;
      }
      switch (c) {
        case QUOTE: {
          this.inScalar = false;
          const top = this.top;
          this.inString = true;
          if (top?.isObject && top.expectKey) {
            this.capture = [];
            const v = this.countEntry(top);
            if (v) return v;
          } else {
            const v = this.countValue();
            if (v) return v;
          }
          break;
        }
        case 0x7b: // {
        case 0x5b: {
          // [
          this.inScalar = false;
          const v = this.countValue();
          if (v) return v;
          if (this.stack.length >= this.limits.maxDepth) return this.violation(`nested deeper than ${this.limits.maxDepth} levels`);
          this.stack.push({ isObject: c === 0x7b, entries: 0, key: '', expectKey: c === 0x7b });
          break;
        }
        case 0x7d: // }
        case 0x5d: // ]
          this.inScalar = false;
          this.stack.pop();
          break;
        case 0x2c: {
          // ,
          this.inScalar = false;
          const top = this.top;
          if (top?.isObject) top.expectKey = true;
          break;
        }
        case 0x3a: {
          // :
          this.inScalar = false;
          const top = this.top;
          if (top?.isObject) top.expectKey = false;
          break;
        }
        case 0x20:
        case 0x09:
        case 0x0a:
        case 0x0d:
          this.inScalar = false;
          break;
        default:
          // The first character of a number or literal starts a value; the rest continue it.
          if (!this.inScalar) {
            this.inScalar = true;
            const v = this.countValue();
            if (v) return v;
          }
      }
    }
    return null;
  }

  private get top(): Frame | undefined {
    return this.stack[this.stack.length - 1];
  }

  /** A value starts: in an array it is an entry; in an object its key was the entry. */
  private countValue(): ShapeViolation | null {
    if (++this.values > this.limits.maxValues) {
      return this.violation(`the body holds more than ${this.limits.maxValues} JSON values; no request of this API needs that many`, true);
    }
    const top = this.top;
    return top && !top.isObject ? this.countEntry(top) : null;
  }

  private countEntry(frame: Frame): ShapeViolation | null {
    if (++frame.entries > this.limits.maxEntries) {
      const kind = frame.isObject ? 'keys' : 'elements';
      return this.violation(`more than ${this.limits.maxEntries} ${kind}; no field of this API takes that many`, false, frame);
    }
    return null;
  }

  /** The path down to `upTo` (the container at fault), or to the innermost container. */
  private violation(message: string, wholeBody = false, upTo?: Frame): ShapeViolation {
    if (wholeBody) return { path: '', message };
    const path: string[] = [];
    for (const f of this.stack) {
      if (f === upTo) break;
      path.push(f.isObject ? f.key : String(f.entries - 1));
    }
    const at = fieldPath(path);
    return { path: at, message: at ? `${at}: ${message}` : `the request body: ${message}` };
  }
}
