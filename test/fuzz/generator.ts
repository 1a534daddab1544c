/**
 * The fuzz case generator: from one seed, a reproducible stream of malformed and adversarial requests
 * against /v1/completions, /v1/chat/completions, /tokenize and /detokenize.
 *
 * Each case starts from a small valid request (at most a few tokens, so a case that happens to be
 * valid costs milliseconds) and breaks it in one of several ways: at the byte level (broken JSON,
 * bare NaN, invalid UTF-8, 10k-level nesting), at the HTTP level (content types, methods, paths,
 * oversize bodies), or field by field from pools of wrong types, out-of-range values and edge cases.
 *
 * A case says whether the server must refuse it (`reject`: a 2xx would mean a validation gap, e.g.
 * NaN accepted as a temperature), must serve it (`accept`: valid but unusual requests, such as lone
 * surrogates, n x batched prompts at the limits, or calibrated streams), or may answer either way
 * (`any`). Only cases whose outcome is certain are marked; the suite's main assertions (no 5xx, the
 * error shape) hold for every case.
 */
import type { Prng } from '../helpers/prng.js';
import { adversarialImageUrl } from './images.js';
import { deepArray, deepObject, encodeJson, Raw } from './json-bytes.js';

/** `reject`: a 2xx is a validation gap. `accept`: anything but a 2xx or a 429 is a false refusal. */
export type Expectation = 'reject' | 'accept' | 'any';

export interface FuzzCase {
  seq: number;
  /** Which generator made it, e.g. `field.logit_bias`, for the tallies and for reproducing. */
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
  expect: Expectation;
}

/** What the generator needs to know about the server under test. */
export interface FuzzTarget {
  modelId: string;
  vocabSize: number;
  maxModelLen: number;
  nHeads: number;
  /** Layers with an ACT fragment. */
  actLayers: readonly number[];
  bodyLimitBytes: number;
  maxPromptChars: number;
  maxImageBytes: number;
  maxMessages: number;
  maxStopStrings: number;
  maxStopStringLength: number;
  maxStopTokenIds: number;
  maxLogitBias: number;
  maxN: number;
  maxPrompts: number;
}

type Endpoint = 'completions' | 'chat' | 'tokenize' | 'detokenize';
const PATHS: Record<Endpoint, string> = {
  completions: '/v1/completions',
  chat: '/v1/chat/completions',
  tokenize: '/tokenize',
  detokenize: '/detokenize',
};

/** A field value and whether it alone makes the request invalid. */
interface Mut {
  /** KEEP: the mutation edited the body itself (see `touched`). */
  value: unknown;
  reject: boolean;
  /** Fields the mutation wrote; default: its own field. */
  touched?: string[];
}

type FieldPool = [field: string, mutate: (body: Record<string, unknown>) => Mut, dependsOn?: string[]][];
const ok = (value: unknown): Mut => ({ value, reject: false });
const bad = (value: unknown): Mut => ({ value, reject: true });
/** Remove the field. */
const ABSENT = Symbol('absent');
/** The mutation wrote the body itself. */
const KEEP = Symbol('keep');

const JSON_CT = { 'content-type': 'application/json' };

/** Bare tokens JSON does not have, and number spellings it forbids. */
const INVALID_NUMBER_TOKENS = ['NaN', '-NaN', 'Infinity', '-Infinity', 'undefined', '0x10', '01', '.5', '+1', '1.', '-', '1e', '--1', '1_000', 'nul', 'tru'];
/** Valid JSON that parses to a non-finite or unsafe number. */
const HUGE_NUMBER_TOKENS = ['1e999', '-1e999', '1e308', '-1e308', '123456789012345678901234567890', '9007199254740993', '-9007199254740993'];

const LONE_SURROGATES = ['\ud800', '\udfff', '\udc00\ud800', 'a\ud83d', '\ud83db', 'x\ud800y\udc00z'];
const STRANGE_TEXT = ['', ' ', '\n', '\t\t\n  \r\n', '\u0000', 'a\u0000b', '\u202e\u2066', '\ufeff', '😀🙃', '\u00a0\u3000', 'Once\u0007upon', '\\', '"', '</s>', '<s>', '<unk>', '{{ 7*7 }}', '{% raw %}'];
/** Byte sequences that are not UTF-8: lone continuation bytes, truncated sequences, overlongs, encoded surrogates, 0xFF. */
const INVALID_UTF8: readonly (readonly number[])[] = [[0xff], [0xfe, 0xff], [0x80], [0xc3], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]];

/** Where a deeply nested value goes, per endpoint (`body`: the whole body is the nesting). */
const DEEP_PLACES: Record<Endpoint, readonly string[]> = {
  completions: ['body', 'prompt', 'calibration', 'logit_bias', 'vllm_xargs', 'stop'],
  chat: ['body', 'messages', 'content', 'calibration'],
  tokenize: ['body', 'prompt'],
  detokenize: ['body', 'tokens'],
};

export class CaseGenerator {
  private seq = 0;

  constructor(
    private readonly r: Prng,
    private readonly t: FuzzTarget,
  ) {}

  next(): FuzzCase {
    const r = this.r;
    const family = r.weighted<() => Omit<FuzzCase, 'seq'>>([
      [18, () => this.bytesCase()],
      [8, () => this.httpCase()],
      [44, () => this.fieldCase()],
      [10, () => this.imageCase()],
      [10, () => this.tokenizeCase()],
      [10, () => this.validCase()],
    ]);
    return { seq: this.seq++, ...family() };
  }

  // ---------------------------------------------------------------- bases

  private endpoint(): Endpoint {
    return this.r.weighted<Endpoint>([
      [4, 'completions'],
      [4, 'chat'],
      [1, 'tokenize'],
      [1, 'detokenize'],
    ]);
  }

  /** A small valid body: a few tokens at most, so a case that survives validation is cheap to serve. */
  private base(ep: Endpoint): Record<string, unknown> {
    const r = this.r;
    switch (ep) {
      case 'completions':
        return {
          ...(r.chance(0.5) ? { model: this.t.modelId } : {}),
          prompt: r.pick<unknown>(['Once upon a time', 'Lily', [1, 403, 407], ['Once', [1, 403]]]),
          max_tokens: r.int(0, 3),
          temperature: r.pick([0, 0.7, 1]),
          ...(r.chance(0.2) ? { stream: true } : {}),
        };
      case 'chat':
        return {
          ...(r.chance(0.5) ? { model: this.t.modelId } : {}),
          messages: r.pick<unknown>([[{ role: 'user', content: 'Lily went' }], [{ role: 'system', content: 'A story.' }, { role: 'user', content: 'Tom' }]]),
          max_tokens: r.int(1, 3),
          temperature: r.pick([0, 0.7]),
          ...(r.chance(0.2) ? { stream: true } : {}),
        };
      case 'tokenize':
        return r.chance(0.5) ? { prompt: 'Once upon a time' } : { messages: [{ role: 'user', content: 'Lily' }] };
      case 'detokenize':
        return { tokens: [1, 403, 407] };
    }
  }

  private post(kind: string, ep: Endpoint, body: Buffer | null, expect: Expectation, headers: Record<string, string> = JSON_CT): Omit<FuzzCase, 'seq'> {
    return { kind, method: 'POST', path: PATHS[ep], headers, body, expect };
  }

  // ---------------------------------------------------------------- byte level

  private bytesCase(): Omit<FuzzCase, 'seq'> {
    const r = this.r;
    const ep = this.endpoint();
    const base = this.base(ep);
    const text = encodeJson(base).toString('utf8');
    const numericField = ep === 'completions' || ep === 'chat' ? r.pick(['max_tokens', 'temperature', 'top_p', 'seed', 'n', 'top_k', 'presence_penalty']) : null;
    const variants: [number, () => Omit<FuzzCase, 'seq'>][] = [
      [3, () => this.post('json.truncated', ep, Buffer.from(text.slice(0, r.int(0, text.length - 1))), 'reject')],
      [
        2,
        () => {
          // Stray punctuation at random places: almost always a syntax error, never a crash.
          let s = text;
          for (let k = r.int(1, 3); k > 0; k--) {
            const at = r.int(0, s.length);
            s = s.slice(0, at) + r.pick(['{', '}', '[', ']', ',', ':', '"', "'", '\\', '/*', '//']) + s.slice(at);
          }
          return this.post('json.garbage', ep, Buffer.from(s), 'any');
        },
      ],
      [2, () => this.post('json.not-an-object', ep, Buffer.from(r.pick(['[]', '[1,2]', '"prompt"', '42', 'null', 'true', '[{"prompt":"x"}]', '""'])), 'reject')],
      [1, () => this.post('json.empty', ep, Buffer.from(r.pick(['', ' ', '\n\n', '\t'])), 'reject')],
      [1, () => this.post('json.trailing', ep, Buffer.from(text + r.pick([',', '}', ' x', '{}', '\u0000'])), 'reject')],
      [1, () => this.post('json.single-quotes', ep, Buffer.from(text.replace(/"/g, "'")), 'reject')],
      [1, () => this.post('json.comment', ep, Buffer.from(`/* hi */${text}`), 'reject')],
      [1, () => this.post('json.bom', ep, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), 'any')],
      [1, () => this.post('json.unescaped-control', ep, Buffer.from(text.replace(/"([^"]*)"/, (_m, s: string) => `"${s}\u0001\n"`)), 'reject')],
      [1, () => this.post('json.duplicate-keys', ep, Buffer.from(`${text.slice(0, -1)},${text.slice(1)}`), 'any')],
      [
        1,
        () =>
          this.post(
            'json.proto',
            ep,
            Buffer.from(r.pick([`{"__proto__":{"max_tokens":500},${text.slice(1)}`, `{"constructor":{"prototype":{"x":1}},${text.slice(1)}`, `${text.slice(0, -1)},"calibration":{"__proto__":{"act":true}}}`])),
            'reject',
          ),
      ],
      [
        2,
        () => {
          if (!numericField) return this.post('json.nan', ep, Buffer.from(text.replace(/\d+/, r.pick(INVALID_NUMBER_TOKENS))), 'any');
          const token = r.pick(INVALID_NUMBER_TOKENS);
          return this.post('json.nan', ep, encodeJson({ ...base, [numericField]: Raw.text(token) }), 'reject');
        },
      ],
      [
        2,
        () => {
          const field = numericField ?? 'max_tokens';
          // /tokenize and /detokenize ignore sampling fields as unknown. A finite huge seed or top_k
          // (1e308) is only refused when it is not a safe integer, which not every token here is.
          const certain = numericField !== null && field !== 'seed' && field !== 'top_k';
          return this.post('json.huge-number', ep, encodeJson({ ...base, [field]: Raw.text(r.pick(HUGE_NUMBER_TOKENS)) }), certain ? 'reject' : 'any');
        },
      ],
      [
        2,
        () => {
          const depth = r.pick([1_000, 10_000, 10_000, 100_000]);
          const where = r.pick(DEEP_PLACES[ep]);
          const nest = r.chance(0.5) ? deepArray(depth) : deepObject(depth);
          if (where === 'body') return this.post('json.deep', ep, r.chance(0.5) ? deepArray(depth).bytes : deepObject(depth, 'prompt').bytes, 'reject');
          const body: Record<string, unknown> = { ...base };
          if (where === 'content') body.messages = [{ role: 'user', content: nest }];
          else if (where === 'calibration') body.calibration = r.chance(0.5) ? { act: nest } : nest;
          else if (where === 'vllm_xargs') body.vllm_xargs = { calibration: nest };
          else {
            // /tokenize reads `messages` when present; the nested prompt must be what it reads.
            delete body.messages;
            body[where] = nest;
          }
          return this.post(`json.deep.${where}`, ep, encodeJson(body), 'reject');
        },
      ],
      [
        3,
        () => {
          // Not UTF-8 inside a string: the parser replaces it (U+FFFD) or refuses; either is fine.
          const bytes = r.pick(INVALID_UTF8);
          const body: Record<string, unknown> = { ...base };
          const junk = Raw.stringWithBytes(r.pick(['Once ', '', 'a']), bytes, r.pick(['', ' upon', 'b']));
          if (ep === 'completions' || ep === 'tokenize') {
            if ('prompt' in body) body.prompt = junk;
            else body.messages = [{ role: 'user', content: junk }];
          } else if (ep === 'chat') {
            body[r.pick(['messages', 'stop', 'model', 'user'])] = r.chance(0.5) ? [{ role: 'user', content: junk }] : junk;
          } else body.tokens = junk;
          return this.post('bytes.invalid-utf8', ep, encodeJson(body), 'any');
        },
      ],
      [1, () => this.post('bytes.random', ep, Buffer.from(Array.from({ length: r.int(1, 200) }, () => r.int(0, 255))), 'reject')],
    ];
    return r.weighted(variants)();
  }

  // ---------------------------------------------------------------- HTTP level

  private httpCase(): Omit<FuzzCase, 'seq'> {
    const r = this.r;
    const ep = this.endpoint();
    const body = encodeJson(this.base(ep));
    const variants: [number, () => Omit<FuzzCase, 'seq'>][] = [
      [
        4,
        () => {
          const ct = r.pick(['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'image/png', 'application/octet-stream', '']);
          return this.post(`http.content-type`, ep, body, 'reject', ct === '' ? {} : { 'content-type': ct });
        },
      ],
      [
        2,
        () => {
          const ct = r.pick(['application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json; charset=latin1', 'application/json; charset=utf-16', 'application/jsonx', 'application/vnd.api+json', 'application/json;;', 'application/json; boundary=x']);
          return this.post('http.content-type-odd', ep, body, 'any', { 'content-type': ct });
        },
      ],
      [2, () => ({ kind: 'http.method', method: r.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']), path: PATHS[ep], headers: JSON_CT, body: r.chance(0.5) ? body : null, expect: 'reject' })],
      [
        2,
        () => ({
          kind: 'http.path',
          method: 'POST',
          path: r.pick(['/v1/completions/', '/v1//completions', '/V1/COMPLETIONS', '/v1/completion', '/v1/chat/completions/x', '/%2e%2e/etc/passwd', '/v1/completions%00', '/tokenize/../detokenize', '/v2/completions', '/v1/embeddings', `/${'a'.repeat(5000)}`]),
          headers: JSON_CT,
          body,
          expect: 'any',
        }),
      ],
      [1, () => ({ kind: 'http.query', method: 'POST', path: `${PATHS[ep]}?${r.pick(['stream=true', 'model=x', 'a'.repeat(2000), '%zz', '__proto__[x]=1'])}`, headers: JSON_CT, body, expect: 'any' })],
      [
        1,
        () => {
          const pad = Buffer.alloc(this.t.bodyLimitBytes + r.int(1, 1024), 0x61);
          return this.post('http.oversize', ep, Buffer.concat([Buffer.from('{"prompt":"'), pad, Buffer.from('"}')]), 'reject');
        },
      ],
      [1, () => this.post('http.content-encoding', ep, body, 'any', { ...JSON_CT, 'content-encoding': r.pick(['gzip', 'deflate', 'br', 'identity', 'x-unknown']) })],
      [1, () => this.post('http.request-id', ep, body, 'any', { ...JSON_CT, 'x-request-id': r.pick(['a'.repeat(129), '../../etc', '$(reboot)', '\u00e9', '', '{"a":1}', 'x'.repeat(8000)]) })],
      [1, () => this.post('http.authorization', ep, body, 'any', { ...JSON_CT, authorization: r.pick(['Bearer', 'Bearer ', 'Basic Zm9vOmJhcg==', `Bearer ${'k'.repeat(5000)}`]) })],
    ];
    return r.weighted(variants)();
  }

  // ---------------------------------------------------------------- field level

  private fieldCase(): Omit<FuzzCase, 'seq'> {
    const r = this.r;
    const ep = r.chance(0.5) ? 'completions' : 'chat';
    const body = this.base(ep);
    const applied: { fields: string[]; deps: string[]; reject: boolean }[] = [];
    const kinds: string[] = [];
    for (let k = r.weighted([[6, 1], [3, 2], [1, 3]] as const); k > 0; k--) {
      const [field, mutate, deps = []] = r.pick(this.fieldPools(ep));
      const m = mutate(body);
      kinds.push(field);
      if (m.value === ABSENT) delete body[field];
      else if (m.value !== KEEP) body[field] = m.value;
      applied.push({ fields: m.touched ?? [field], deps, reject: m.reject });
    }
    // A refusal is certain only if no later mutation overwrote the field and none touched what its rule
    // depends on (stream_options on stream, best_of on n, ...).
    const reject = applied.some(
      (a, i) => a.reject && !applied.some((b, j) => j !== i && ((j > i && b.fields.some((f) => a.fields.includes(f))) || b.fields.some((f) => a.deps.includes(f)))),
    );
    return this.post(`field.${kinds.join('+')}`, ep, encodeJson(body), reject ? 'reject' : 'any');
  }

  /** Per field: a mutation that may look at the body (some rules depend on other fields). */
  private fieldPools(ep: 'completions' | 'chat'): FieldPool {
    const r = this.r;
    const t = this.t;
    const wrongType = (...except: string[]) => {
      const pool: [string, unknown][] = [
        ['string', r.pick(['x', '1', 'true', '', 'NaN', 'Infinity', '-Infinity', '1e999'])],
        ['number', r.pick([1, 0, -1, 1.5])],
        ['boolean', r.chance(0.5)],
        ['array', r.pick([[], [1], ['a']])],
        ['object', r.pick([{}, { a: 1 }])],
      ];
      return bad(r.pick(pool.filter(([type]) => !except.includes(type)))[1]);
    };
    const numberField = (validValues: number[], invalidValues: unknown[]) => (): Mut =>
      r.weighted<() => Mut>([
        [3, () => ok(r.pick(validValues))],
        [4, () => bad(r.pick(invalidValues))],
        [2, () => wrongType('number')],
        [1, () => bad(Raw.text(r.pick([...INVALID_NUMBER_TOKENS, '1e999', '-1e999'])))],
        [1, () => ok(null)],
      ])();
    const boolField = (): Mut => (r.chance(0.4) ? ok(r.chance(0.5)) : wrongType('boolean'));

    const common: FieldPool = [
      ['temperature', numberField([0, 0.5, 2, 100], [-0.1, -1, 100.5, 1e308, -1e308])],
      ['top_p', numberField([1, 0.5, 1e-9], [0, -1, 1.0001, 1e308])],
      ['top_k', numberField([-1, 0, 1, 5, 1_000_000, 2 ** 31], [-2, 1.5, -1e9])],
      ['min_p', numberField([0, 1, 0.05], [-0.1, 1.1])],
      // Tiny positive penalties push seen tokens' logits to ±∞: the API must refuse them.
      ['repetition_penalty', numberField([1, 0.5, 100, 1e-3], [0, -1, 100.5, 1e-300, 1e-40, 5e-324])],
      ['presence_penalty', numberField([-2, 2, 0], [-2.1, 3, 1e9])],
      ['frequency_penalty', numberField([-2, 2, 0.5], [2.0001, -50])],
      ['seed', numberField([0, -1, 2 ** 31, 2 ** 53 - 1, -(2 ** 53 - 1)], [1.5, 2 ** 64, -(2 ** 64), 0.1])],
      // On chat, max_completion_tokens wins over max_tokens, whose context check then does not apply.
      ['max_tokens', numberField([0, 1, 2, 3], [-1, -1e9, 1.5, t.maxModelLen + 1, 1e9, 2 ** 53, 2 ** 64]), ep === 'chat' ? ['max_completion_tokens'] : []],
      ['n', numberField([1, 2, 4, t.maxN], [0, -1, t.maxN + 1, 1.5, 1e9])],
      ['ignore_eos', boolField],
      ['include_stop_str_in_output', boolField],
      ['return_tokens_as_token_ids', boolField],
      ['stream', boolField],
      ['user', () => (r.chance(0.5) ? ok(r.pick(['u-1', '', ...LONE_SURROGATES])) : wrongType('string'))],
      ['model', () => r.weighted<() => Mut>([[2, () => ok(t.modelId)], [1, () => ok(null)], [3, () => bad(r.pick(['gpt-4', `${t.modelId} `, t.modelId.toUpperCase(), '../stories260K', '\ud800', 'x'.repeat(10_000)]))], [2, () => wrongType('string')]])()],
      ['logit_bias', () => this.logitBias()],
      ['stop', () => this.stop()],
      ['stop_token_ids', () => this.stopTokenIds()],
      ['stream_options', (body) => this.streamOptions(body), ['stream']],
      ['prompt_logprobs', (body) => {
        const v = r.pick<unknown>([0, 2, 20, 21, -1, 1.5, 'x', null]);
        const valid = v === null || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 20 && body.stream !== true);
        return { value: v, reject: !valid };
      }, ['stream']],
      ['calibration', (body) => this.calibration(body), ['vllm_xargs']],
      ['vllm_xargs', (body) => this.vllmXargs(body), ['calibration']],
      ['unsupported', (body) => this.unsupported(ep, body)],
      [
        'unknown',
        (body) => {
          const key = r.pick(['frobnicate', 'metadata', 'store', 'service_tier', 'x'.repeat(300), '\ud800', '']);
          body[key] = r.pick<unknown>([1, 'x', { a: [1] }, null, deepArray(1_000)]);
          return { value: KEEP, reject: false, touched: [key] };
        },
      ],
    ];
    if (ep === 'completions') {
      return [
        ...common,
        ['prompt', () => this.prompt()],
        ['prompt', () => this.prompt()],
        ['echo', boolField],
        ['logprobs', numberField([0, 1, 5, 20], [21, -1, 1.5, 1e9])],
        ['best_of', (body) => (r.chance(0.3) ? ok((body.n as number | undefined) ?? 1) : { value: r.pick([0, -1, 2, 1.5, 'x']), reject: body.n === undefined || body.n === 1 }), ['n']],
        ['suffix', () => (r.chance(0.3) ? ok(r.pick(['', null])) : bad(r.pick(['x', 5, []])))],
      ];
    }
    return [
      ...common,
      ['messages', () => this.messages()],
      ['messages', () => this.messages()],
      ['logprobs', () => (r.chance(0.5) ? ok(r.pick([true, false, null])) : wrongType('boolean'))],
      ['top_logprobs', (body) => {
        const v = r.pick<unknown>([0, 5, 20, 21, -1, 1.5, 'x', null]);
        const valid = v === null || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 20 && body.logprobs === true);
        return { value: v, reject: !valid };
      }, ['logprobs']],
      ['max_completion_tokens', numberField([1, 2, 3], [-1, 1.5, 1e9, t.maxModelLen + 1]), ['max_tokens']],
      ['add_generation_prompt', boolField],
      ['echo', () => (r.chance(0.3) ? ok(false) : bad(r.pick([true, 'x', 1])))],
    ];
  }

  private prompt(): Mut {
    const r = this.r;
    const t = this.t;
    const id = () => r.int(0, t.vocabSize - 1);
    return r.weighted<() => Mut>([
      [3, () => ok(r.pick([...STRANGE_TEXT, ...LONE_SURROGATES]))],
      [1, () => ok(r.pick(STRANGE_TEXT).repeat(r.int(1, 200)))],
      [2, () => ok(Array.from({ length: r.int(1, 8) }, id))],
      [1, () => ok([0]) /* <unk> is a real token id */],
      [1, () => ok(Array.from({ length: r.int(1, 4) }, () => r.pick<unknown>(['', ' ', 'Lily', [1], [id(), id()]])))],
      [1, () => ok(Array.from({ length: t.maxPrompts }, () => 'a'))],
      [4, () => bad(r.pick<unknown>([[], [[]], [t.vocabSize], [1, t.vocabSize + r.int(0, 1e6)], [-1], [1.5], [1, '2'], [null], [[1], 2], [true], [{}], 5, true, {}, null, [2 ** 53], [1e300]]))],
      [1, () => bad(Array.from({ length: t.maxPrompts + 1 }, () => 'a'))],
      [1, () => bad(Array.from({ length: t.maxModelLen + r.int(1, 100) }, () => 1))],
      [1, () => bad('x'.repeat(t.maxPromptChars + 1))],
      [1, () => bad([Raw.text(r.pick(['1e999', 'NaN', '-1e999']))])],
      [1, () => ok(ABSENT)],
    ])();
  }

  private messages(): Mut {
    const r = this.r;
    const t = this.t;
    const text = () => r.pick([...STRANGE_TEXT, ...LONE_SURROGATES, 'Lily']);
    return r.weighted<() => Mut>([
      [
        3,
        () =>
          ok(
            r.pick<unknown>([
              [{ role: 'user', content: text() }],
              [{ role: 'system', content: text() }, { role: 'user', content: text() }],
              [{ role: 'assistant', content: null }],
              [{ role: 'user' }],
              [{ role: 'developer', content: text() }],
              [{ role: 'user', content: 'hi', name: text() }],
              [{ role: 'user', content: [] }],
              [{ role: 'user', content: [{ type: 'text', text: text() }, { type: 'text', text: text() }] }],
              [{ role: 'user', content: 'x', unknown_field: [1, 2] }],
              [{ role: 'assistant', content: 'x', tool_calls: [] }],
              Array.from({ length: t.maxMessages }, () => ({ role: 'user', content: 'a' })),
            ]),
          ),
      ],
      [
        6,
        () =>
          bad(
            r.pick<unknown>([
              [],
              {},
              'hi',
              null,
              5,
              [{}],
              [null],
              [[]],
              ['hi'],
              [{ role: 'tool', content: 'x' }],
              [{ role: 'function', content: 'x' }],
              [{ role: 'USER', content: 'x' }],
              [{ role: 5, content: 'x' }],
              [{ role: 'user', content: 5 }],
              [{ role: 'user', content: { text: 'x' } }],
              [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }],
              [{ role: 'user', content: [{ type: 'text' }] }],
              [{ role: 'user', content: [{ type: 'text', text: 5 }] }],
              [{ role: 'user', content: [{}] }],
              [{ role: 'user', content: [null] }],
              [{ role: 'user', content: [{ type: 'image_url' }] }],
              [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }],
              [{ role: 'user', content: [{ type: 'image_url', image_url: { url: '' } }] }],
              [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'ultra' } }] }],
              [{ role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function' }] }],
              [{ role: 'user', content: 'x', tool_call_id: 'x' }],
              [{ role: 'user', content: 'x', name: 5 }],
              Array.from({ length: t.maxMessages + 1 }, () => ({ role: 'user', content: 'a' })),
              [{ role: 'user', content: 'x'.repeat(t.maxPromptChars + 1) }],
            ]),
          ),
      ],
      [1, () => bad([{ role: 'user', content: deepArray(10_000) }])],
    ])();
  }

  private logitBias(): Mut {
    const r = this.r;
    const t = this.t;
    const entries = (n: number, start = 0) => Object.fromEntries(Array.from({ length: n }, (_, i) => [String(start + i), r.int(-100, 100)]));
    return r.weighted<() => Mut>([
      [3, () => ok(r.pick<unknown>([{}, { 0: 100 }, { [t.vocabSize - 1]: -100 }, { '00001': 5 }, entries(Math.min(t.maxLogitBias, t.vocabSize)), null]))],
      [
        5,
        () =>
          bad(
            r.pick<unknown>([
              { [t.vocabSize]: 1 },
              { '-1': 1 },
              { '1.5': 1 },
              { ' 1': 1 },
              { '1e2': 1 },
              { abc: 1 },
              { '': 1 },
              { '\ud800': 1 },
              { '99999999999999999999999': 1 },
              { 1: 101 },
              { 1: -100.5 },
              { 1: '5' },
              { 1: null },
              { 1: [] },
              { 1: Raw.text('NaN') },
              { 1: Raw.text('1e999') },
              [1, 2],
              'x',
              5,
              entries(t.maxLogitBias + 1),
              entries(10_000),
            ]),
          ),
      ],
    ])();
  }

  private stop(): Mut {
    const r = this.r;
    const t = this.t;
    return r.weighted<() => Mut>([
      [3, () => ok(r.pick<unknown>(['\n', ['a', 'b'], [], '\ud800', ['😀', '\udc00'], 'x'.repeat(t.maxStopStringLength), Array.from({ length: t.maxStopStrings }, (_, i) => `s${i}`), null]))],
      [
        5,
        () =>
          bad(
            r.pick<unknown>([
              '',
              [''],
              ['a', ''],
              'x'.repeat(t.maxStopStringLength + 1),
              Array.from({ length: t.maxStopStrings + 1 }, (_, i) => `s${i}`),
              Array.from({ length: 10_000 }, () => 'a'),
              [1],
              [null],
              [['a']],
              5,
              {},
              true,
            ]),
          ),
      ],
    ])();
  }

  private stopTokenIds(): Mut {
    const r = this.r;
    const t = this.t;
    return r.weighted<() => Mut>([
      [2, () => ok(r.pick<unknown>([[2], [], [0, t.vocabSize - 1], null]))],
      [4, () => bad(r.pick<unknown>([[t.vocabSize], [-1], [1.5], ['2'], [null], 2, Array.from({ length: t.maxStopTokenIds + 1 }, () => 2), [Raw.text('NaN')], [2 ** 53]]))],
    ])();
  }

  private streamOptions(body: Record<string, unknown>): Mut {
    const r = this.r;
    const v = r.pick<unknown>([{ include_usage: true }, {}, { continuous_usage_stats: false }, { include_usage: true, extra: 1 }, null, { include_usage: 'yes' }, { continuous_usage_stats: true }, [], 'x', 1]);
    if (r.chance(0.7)) body.stream = true;
    const touched = ['stream_options', 'stream'];
    if (v === null) return { value: v, reject: false, touched };
    const valid =
      body.stream === true &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      [undefined, true, false].includes((v as { include_usage?: unknown }).include_usage as boolean | undefined) &&
      [undefined, false].includes((v as { continuous_usage_stats?: unknown }).continuous_usage_stats as boolean | undefined);
    return { value: v, reject: !valid, touched };
  }

  /** Calibration configs: valid ones (some calibrated, so the calibrated graph runs too) and broken ones. */
  private calibrationValue(): Mut {
    const r = this.r;
    const t = this.t;
    const layer = r.pick(t.actLayers);
    const noFragment = Array.from({ length: t.actLayers.length + 3 }, (_, i) => i).find((l) => !t.actLayers.includes(l)) ?? 99;
    return r.weighted<() => Mut>([
      [
        4,
        () =>
          ok(
            r.pick<unknown>([
              {},
              { act: false },
              { act: true },
              { act: {} },
              { act: { beta: r.pick([0, 0.3, 1]) } },
              { act: { heads: { [layer]: [0, 1] }, beta: 0.3 } },
              { act: { heads: { [layer]: [t.nHeads - 1, t.nHeads - 1, 0] } } },
              { act: { heads: { [layer]: [] } } },
              { act: { heads: 'profile', threshold: 1 } },
              { act: true, report: 'full' },
              { report: 'summary' },
            ]),
          ),
      ],
      [
        6,
        () =>
          bad(
            r.pick<unknown>([
              [],
              'act',
              5,
              true,
              { nope: true },
              { ACT: true },
              { act: 3 },
              { act: 'true' },
              { act: null },
              { act: [] },
              { act: { beta: -0.1 } },
              { act: { beta: 1.1 } },
              { act: { beta: '0.3' } },
              { act: { beta: Raw.text('NaN') } },
              { act: { beta: Raw.text('1e999') } },
              { act: { threshold: 0 } },
              { act: { threshold: 1.5 } },
              { act: { gamma: 1 } },
              { act: { heads: { [noFragment]: [0] } } },
              { act: { heads: { [layer]: [t.nHeads] } } },
              { act: { heads: { [layer]: [-1] } } },
              { act: { heads: { [layer]: [1.5] } } },
              { act: { heads: { [layer]: ['0'] } } },
              { act: { heads: { x: [1] } } },
              { act: { heads: { '-1': [0] } } },
              { act: { heads: { '2.0': [0] } } },
              { act: { heads: { [layer]: 'all' } } },
              { act: { heads: 'all' } },
              { act: { heads: [] } },
              { act: { heads: [[0]] } },
              { act: { heads: { 99: [0] } } },
              { report: 'all' },
              { report: 1 },
              { report: null },
              { act: true, report: 'FULL' },
            ]),
          ),
      ],
    ])();
  }

  private calibration(body: Record<string, unknown>): Mut {
    delete body.vllm_xargs;
    const touched = ['calibration', 'vllm_xargs'];
    if (this.r.chance(0.1)) return { value: null, reject: false, touched };
    return { ...this.calibrationValue(), touched };
  }

  private vllmXargs(body: Record<string, unknown>): Mut {
    const r = this.r;
    const both = r.chance(0.15);
    if (both) body.calibration = { act: true };
    else delete body.calibration;
    const touched = ['vllm_xargs', 'calibration'];
    const c = this.calibrationValue();
    const m = r.weighted<() => Mut>([
      [4, () => ({ value: { calibration: c.value }, reject: c.reject || both })],
      // Clients whose extra args are scalars send the config as a JSON string.
      [2, () => (c.value instanceof Raw ? { value: { calibration: c.value }, reject: true } : { value: { calibration: JSON.stringify(c.value) }, reject: c.reject || both })],
      [2, () => bad({ calibration: r.pick(['{nope', '', 'null}', '[', '{"act":']) })],
      [1, () => ok({ other: 1, temperature: 'hot' })],
      [1, () => bad(r.pick<unknown>(['x', 5, true]))],
      [1, () => ok(r.pick<unknown>([[], [1]]))],
    ])();
    return { ...m, touched };
  }

  private unsupported(ep: 'completions' | 'chat', body: Record<string, unknown>): Mut {
    const r = this.r;
    const pool: [string, unknown, boolean][] = [
      ['response_format', { type: 'json_object' }, true],
      ['response_format', { type: 'text' }, false],
      ['guided_json', {}, true],
      ['guided_regex', 'a+', true],
      ['guided_choice', ['a'], true],
      // min_tokens is supported; more than any max_tokens the context allows is refused.
      ['min_tokens', 1_000_000, true],
      ['min_tokens', 0, false],
      ['priority', 1, true],
      ['priority', 0, false],
      ['request_id', 'fuzz-1', false],
      ['request_id', 'has space', true],
      ['cache_salt', 'tenant', false],
      ['kv_transfer_params', {}, true],
      ['structural_tag', '{}', true],
      ['guided_decoding_backend', 'xgrammar', true],
      ['use_beam_search', true, true],
      ['truncate_prompt_tokens', 5, true],
      ['skip_special_tokens', false, true],
      ['skip_special_tokens', true, false],
      ['allowed_token_ids', [1], true],
      ['bad_words', ['x'], true],
      ['bad_words', [], false],
      ['logits_processors', ['x'], true],
      ['structured_outputs', { json: {} }, true],
      ['length_penalty', 2, true],
      ...(ep === 'chat'
        ? ([
            ['tools', [{ type: 'function', function: { name: 'f' } }], true],
            ['tools', [], false],
            ['tool_choice', 'auto', true],
            ['tool_choice', 'none', false],
            ['functions', [{}], true],
            ['chat_template', '{{ 7*7 }}', true],
            ['chat_template_kwargs', { x: 1 }, true],
            ['chat_template_kwargs', {}, false],
            ['audio', {}, true],
            ['modalities', ['audio'], true],
            ['modalities', ['text'], false],
            ['documents', [{}], true],
            ['continue_final_message', true, true],
            ['mm_processor_kwargs', {}, true],
          ] as [string, unknown, boolean][])
        : ([['suffix', 'x', true]] as [string, unknown, boolean][])),
    ];
    const [field, value, reject] = r.pick(pool);
    body[field] = value;
    return { value: KEEP, reject, touched: [field] };
  }

  // ---------------------------------------------------------------- images

  private imageCase(): Omit<FuzzCase, 'seq'> {
    const r = this.r;
    const body = this.base('chat');
    const part = (url: string) => ({ type: 'image_url', image_url: r.chance(0.8) ? { url, ...(r.chance(0.2) ? { detail: r.pick(['auto', 'low', 'high']) } : {}) } : url });
    const count = r.weighted([[8, 1], [1, 2], [1, 9]] as const);
    const content: unknown[] = [{ type: 'text', text: 'What is this?' }];
    for (let i = 0; i < count; i++) content.push(part(adversarialImageUrl(r, this.t.maxImageBytes)));
    body.messages = [{ role: 'user', content }];
    return this.post('image', 'chat', encodeJson(body), 'reject');
  }

  // ---------------------------------------------------------------- tokenize / detokenize

  private tokenizeCase(): Omit<FuzzCase, 'seq'> {
    const r = this.r;
    const t = this.t;
    if (r.chance(0.5)) {
      const tokens = r.weighted<() => Mut>([
        [2, () => ok(r.pick<unknown>([[], [0], [t.vocabSize - 1], [1, 2], Array.from({ length: 5000 }, () => r.int(0, t.vocabSize - 1))]))],
        [4, () => bad(r.pick<unknown>([[t.vocabSize], [-1], [1.5], ['1'], null, 'abc', {}, [null], [[1]], [2 ** 53], [Raw.text('NaN')], ABSENT]))],
      ])();
      const body: Record<string, unknown> = { ...(r.chance(0.3) ? { model: r.pick([t.modelId, 'nope', 5]) } : {}) };
      if (tokens.value !== ABSENT) body.tokens = tokens.value;
      const modelBad = body.model !== undefined && body.model !== t.modelId;
      return this.post('detokenize', 'detokenize', encodeJson(body), tokens.reject || modelBad ? 'reject' : 'any');
    }
    const chat = r.chance(0.4);
    const body: Record<string, unknown> = {};
    let reject = false;
    if (chat) {
      const m = r.chance(0.2) ? ok([{ role: 'user', content: [{ type: 'image_url', image_url: { url: adversarialImageUrl(r, t.maxImageBytes) } }] }]) : this.messages();
      body.messages = m.value;
      reject ||= m.reject;
    } else {
      const p = r.weighted<() => Mut>([
        [3, () => ok(r.pick([...STRANGE_TEXT, ...LONE_SURROGATES, 'Once upon a time']))],
        [3, () => bad(r.pick<unknown>([5, [1, 2], null, {}, true, 'x'.repeat(t.maxPromptChars + 1), ABSENT]))],
      ])();
      if (p.value !== ABSENT) body.prompt = p.value;
      reject ||= p.reject;
    }
    for (const f of ['add_special_tokens', 'return_token_strs', 'add_generation_prompt']) {
      if (!r.chance(0.2)) continue;
      const v = r.pick<unknown>([true, false, null, 'no', 1]);
      body[f] = v;
      if (!(v === true || v === false || v === null) && (f !== 'add_special_tokens' || !chat) && (f !== 'add_generation_prompt' || chat)) reject = true;
    }
    return this.post(chat ? 'tokenize.chat' : 'tokenize.prompt', 'tokenize', encodeJson(body), reject ? 'reject' : 'any');
  }

  // ---------------------------------------------------------------- valid but unusual

  /** Requests that must succeed: odd prompts, n, batches, echo, logprobs, streams, calibration. */
  private validCase(): Omit<FuzzCase, 'seq'> {
    const r = this.r;
    const ep = r.chance(0.6) ? 'completions' : 'chat';
    const body = this.base(ep);
    body.max_tokens = r.int(0, 2);
    if (ep === 'chat') body.max_tokens = r.int(1, 2);
    const extras: [number, () => void][] = [
      [2, () => (body.n = r.int(1, 4))],
      [2, () => (body.stream = true)],
      [1, () => ((body.stream = true), (body.stream_options = { include_usage: true }))],
      [2, () => (body.calibration = r.pick<unknown>([{ act: true }, { act: { heads: { [r.pick(this.t.actLayers)]: [0, 1] }, beta: 0.3 } }, { act: false }, { act: true, report: 'full' }]))],
      [1, () => (body.seed = r.int(-(2 ** 31), 2 ** 31))],
      [1, () => (body.logit_bias = { [r.int(0, this.t.vocabSize - 1)]: r.pick([-100, 100]) })],
      [1, () => (body.stop = r.pick<unknown>(['\ud800', ['.', ','], '😀']))],
      [1, () => (body.ignore_eos = true)],
      [1, () => (body.top_k = r.pick([1, 1000]))],
      [1, () => (body.repetition_penalty = 1.3)],
    ];
    if (ep === 'completions') {
      extras.push(
        [2, () => (body.prompt = r.pick<unknown>([...STRANGE_TEXT, ...LONE_SURROGATES, [0], ['', [1, 2]]]))],
        [1, () => ((body.echo = true), (body.logprobs = r.int(0, 5)))],
        [1, () => ((body.logprobs = r.int(0, 20)), (body.return_tokens_as_token_ids = r.chance(0.5)))],
        // At the limits: the widest fan-out one request may ask for, prompt logprobs over almost the
        // whole context, and the most and longest stop strings.
        [0.3, () => Object.assign(body, { prompt: Array.from({ length: this.t.maxPrompts }, () => 'a'), n: this.t.maxN, max_tokens: 1 })],
        [0.3, () => Object.assign(body, { prompt: Array.from({ length: this.t.maxModelLen - 2 }, () => r.int(3, this.t.vocabSize - 1)), echo: true, logprobs: 20, max_tokens: 1 })],
        [0.3, () => (body.stop = Array.from({ length: this.t.maxStopStrings }, (_, i) => `${i}`.padEnd(this.t.maxStopStringLength, '\ud800')))],
      );
    } else {
      extras.push(
        [2, () => (body.messages = [{ role: 'user', content: r.pick([...STRANGE_TEXT, ...LONE_SURROGATES]) }])],
        [1, () => ((body.logprobs = true), (body.top_logprobs = r.int(0, 20)))],
      );
    }
    for (let k = r.int(1, 3); k > 0; k--) r.weighted(extras)();
    return this.post(`valid.${ep}`, ep, encodeJson(body), 'accept');
  }
}
