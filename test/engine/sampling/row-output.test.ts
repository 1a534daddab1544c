import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RowOutput, type RowOutputParams } from '../../../src/engine/sampling/row-output.js';
import { RowRng } from '../../../src/engine/sampling/rng.js';
import { BOS, EOS, PieceTokenizer, pieceTokenizer } from './piece-tokenizer.js';

const tok = pieceTokenizer();
const PARAMS: RowOutputParams = { maxTokens: 100, stopTokenIds: [], stopStrings: [], ignoreEos: false, includeStopStrInOutput: false };
const HELLO_PROMPT = [BOS, tok.idOf('▁Hello')];

function run(params: Partial<RowOutputParams>, pieces: string[], prompt = HELLO_PROMPT) {
  const row = new RowOutput(tok, { ...PARAMS, ...params }, prompt);
  const texts: string[] = [];
  for (const id of tok.ids(...pieces)) {
    const r = row.append(id);
    texts.push(r.text);
    if (r.finished) return { texts, finished: r.finished, row };
  }
  return { texts, finished: null, row };
}

describe('RowOutput: stop strings', () => {
  it('matches a stop string spanning two tokens and truncates before it', () => {
    const r = run({ stopStrings: ['STOP'] }, ['▁world', '▁ST', 'OP', '!']);
    assert.deepEqual(r.texts, [' world', ' ', '']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: 'STOP' });
  });

  it('matches a stop string spread over single-letter tokens', () => {
    const r = run({ stopStrings: ['STOP'] }, ['▁', 'S', 'T', 'O', 'P']);
    assert.deepEqual(r.texts, [' ', '', '', '', '']);
    assert.equal(r.finished?.stoppedBy, 'STOP');
  });

  it('includes the stop string with includeStopStrInOutput', () => {
    const r = run({ stopStrings: ['STOP'], includeStopStrInOutput: true }, ['▁ST', 'OP', '!']);
    assert.deepEqual(r.texts, [' ', 'STOP']);
  });

  it('releases held-back text once it can no longer become a stop string', () => {
    const r = run({ stopStrings: ['STOP'] }, ['▁ST', 'O', '!', '▁world']);
    assert.deepEqual(r.texts, [' ', '', 'STO!', ' world']);
    assert.equal(r.finished, null);
    assert.equal(r.row.flush(), '');
  });

  it('finds a stop string in front of an incomplete character without waiting for it', () => {
    const r = run({ stopStrings: ['STOP'] }, ['▁ST', 'OP<0xE4>']);
    assert.deepEqual(r.texts, [' ', '']);
    assert.equal(r.finished?.stoppedBy, 'STOP');
  });

  it('matches stop strings that contain multi-byte characters split over tokens', () => {
    const r = run({ stopStrings: ['你!'] }, ['a', '<0xE4>', '<0xBD>', '<0xA0>', '!', 'b']);
    assert.deepEqual(r.texts, ['a', '', '', '', '']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: '你!' });
  });

  it('a stop string beats max_tokens on the same token', () => {
    const r = run({ stopStrings: ['STOP'], maxTokens: 2 }, ['▁ST', 'OP']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: 'STOP' });
  });
});

describe('RowOutput: stop tokens and length', () => {
  it('stops on the tokenizer’s EOS, leaving its text out and releasing held text', () => {
    const r = run({ stopStrings: ['STOP'] }, ['▁world', '▁ST', '</s>']);
    assert.deepEqual(r.texts, [' world', ' ', 'ST']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: EOS });
  });

  it('ignoreEos disables the model’s stop ids but not the request’s', () => {
    const ignoring = run({ ignoreEos: true }, ['▁world', '</s>', '!']);
    assert.equal(ignoring.finished, null);
    const r = run({ ignoreEos: true, stopTokenIds: [tok.idOf('!')] }, ['▁world', '</s>', '!']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: tok.idOf('!') });
    assert.deepEqual(r.texts, [' world', '', '']);
  });

  it('a non-special stop token’s text is included only with includeStopStrInOutput', () => {
    const r = run({ stopTokenIds: [tok.idOf('!')], includeStopStrInOutput: true }, ['▁world', '!']);
    assert.deepEqual(r.texts, [' world', '!']);
  });

  it('ends with length after maxTokens tokens, stop tokens counted', () => {
    const r = run({ maxTokens: 2, stopStrings: ['STOP'] }, ['▁world', '▁ST', '!']);
    assert.deepEqual(r.texts, [' world', ' ST']);
    assert.deepEqual(r.finished, { reason: 'length', stoppedBy: null });
    assert.equal(r.row.tokenCount, 2);
    assert.throws(() => r.row.append(tok.idOf('!')));
    assert.equal(r.row.flush(), '');
  });

  it('drops an incomplete character at the end', () => {
    const r = run({ maxTokens: 2 }, ['a', '<0xE4>']);
    assert.deepEqual(r.texts, ['a', '']);
  });

  it('flush() releases held-back text when the row ends for another reason', () => {
    const r = run({ stopStrings: ['STOP'] }, ['a', '▁ST']);
    assert.deepEqual(r.texts, ['a', ' ']);
    assert.equal(r.row.flush(), 'ST');
    assert.equal(r.row.flush(), '');
    assert.equal(r.row.finished, null);
  });
});

describe('RowOutput: streamed text never leaks a stop string', () => {
  // Stop strings none of which contains another, so "earliest start" and "completes first" agree.
  const STOPS = ['abc', 'ca b', '你c', 'bb'];
  const fuzzTok = new PieceTokenizer(['<unk>', '<s>', '</s>', 'a', 'b', 'c', '▁', 'ab', 'ca', 'bc', '▁b', '<0xE4>', '<0xBD>', '<0xA0>', 'c<0xE4>', 'x']);

  it('matches a full-decode reference on random token streams', () => {
    const rng = RowRng.fromSeed(2024);
    let stopped = 0;
    for (let trial = 0; trial < 3000; trial++) {
      const include = trial % 2 === 1;
      const params: RowOutputParams = { maxTokens: 12, stopTokenIds: [], stopStrings: STOPS, ignoreEos: false, includeStopStrInOutput: include };
      const row = new RowOutput(fuzzTok, params, [BOS]);
      const ids: number[] = [];
      let released = '';
      let finished = null;
      while (!finished) {
        const id = 3 + Math.floor(rng.nextUniform() * (fuzzTok.vocabSize - 3));
        ids.push(id);
        const r = row.append(id);
        released += r.text;
        finished = r.finished;
      }

      const full = fuzzTok.decode([BOS, ...ids], { skipSpecial: true }).replace(/\uFFFD+$/, '');
      let at = -1;
      let which = '';
      for (const s of STOPS) {
        const i = full.indexOf(s);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          which = s;
        }
      }
      const expected = at < 0 ? full : full.slice(0, include ? at + which.length : at);
      assert.equal(released, expected, `trial ${trial}: ids ${ids.join(',')}`);
      if (at >= 0) {
        stopped++;
        assert.deepEqual(finished, { reason: 'stop', stoppedBy: which });
      } else assert.deepEqual(finished, { reason: 'length', stoppedBy: null });
    }
    assert.ok(stopped > 500, `only ${stopped} trials hit a stop string`);
  });

  it('every streamed prefix is a prefix of the final text', () => {
    const rng = RowRng.fromSeed(77);
    for (let trial = 0; trial < 500; trial++) {
      const row = new RowOutput(fuzzTok, { ...PARAMS, maxTokens: 15, stopStrings: STOPS }, [BOS]);
      const prefixes: string[] = [];
      let released = '';
      for (;;) {
        const r = row.append(3 + Math.floor(rng.nextUniform() * (fuzzTok.vocabSize - 3)));
        released += r.text;
        prefixes.push(released);
        if (r.finished) break;
      }
      for (const p of prefixes) assert.ok(released.startsWith(p));
    }
  });
});
