import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RowOutput, type RowOutputParams } from '../../../src/engine/sampling/row-output.js';
import { RowRng } from '../../../src/engine/sampling/rng.js';
import { BOS, EOS, PieceTokenizer, pieceTokenizer } from './piece-tokenizer.js';

const tok = pieceTokenizer();
const PARAMS: RowOutputParams = { maxTokens: 100, stopTokenIds: [], stopStrings: [], ignoreEos: false, includeStopStrInOutput: false, minTokens: 0 };
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

describe('RowOutput: min_tokens (vLLM)', () => {
  it('ignores stop tokens until min_tokens tokens are out', () => {
    const r = run({ minTokens: 3 }, ['▁world', '</s>', '!', '</s>']);
    assert.deepEqual(r.texts, [' world', '', '!', '']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: null });
    assert.equal(r.row.tokenCount, 4);
  });

  it('lets no stop string end in the text of the first min_tokens tokens', () => {
    const early = run({ minTokens: 2, stopStrings: ['STOP'] }, ['▁ST', 'OP', '!', '▁world']);
    assert.equal(early.finished, null, 'STOP ended within the first two tokens');
    assert.deepEqual(early.texts.join(''), ' STOP! world');
  });

  it('finds a stop string that starts inside the min_tokens text and ends after it', () => {
    const r = run({ minTokens: 1, stopStrings: ['STOP'] }, ['▁ST', 'OP', '!']);
    assert.deepEqual(r.texts, [' ', '']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: 'STOP' });
  });
});

describe('RowOutput: stop tokens and length', () => {
  it('stops on the tokenizer’s EOS with stoppedBy null (vLLM’s stop_reason), leaving its text out and releasing held text', () => {
    const r = run({ stopStrings: ['STOP'] }, ['▁world', '▁ST', '</s>']);
    assert.deepEqual(r.texts, [' world', ' ', 'ST']);
    assert.deepEqual(r.finished, { reason: 'stop', stoppedBy: null });
  });

  it('names a request stop token in stoppedBy, but not EOS listed among them', () => {
    assert.deepEqual(run({ stopTokenIds: [tok.idOf('!')] }, ['▁world', '!']).finished, { reason: 'stop', stoppedBy: tok.idOf('!') });
    assert.deepEqual(run({ stopTokenIds: [EOS] }, ['▁world', '</s>']).finished, { reason: 'stop', stoppedBy: null });
    assert.deepEqual(run({ stopTokenIds: [EOS], ignoreEos: true }, ['▁world', '</s>']).finished, { reason: 'stop', stoppedBy: EOS });
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
  // Stop strings that overlap and share letters, so that several can complete on one token.
  const STOPS = ['abc', 'ca b', '你c', 'bb', 'bc'];
  const fuzzTok = new PieceTokenizer(['<unk>', '<s>', '</s>', 'a', 'b', 'c', '▁', 'ab', 'ca', 'bc', '▁b', '<0xE4>', '<0xBD>', '<0xA0>', 'c<0xE4>', 'x']);

  /**
   * vLLM's rule, restated over full decodes: after each token, the text so far (complete characters
   * only); the stop strings in list order, the first with an occurrence ending in the new characters,
   * text from the first minTokens tokens excluded from that window.
   */
  function reference(ids: readonly number[], stops: readonly string[], include: boolean, minTokens = 0): { text: string; which: string | null } {
    const textAt = (k: number) => fuzzTok.decode([BOS, ...ids.slice(0, k)], { skipSpecial: true }).replace(/\uFFFD+$/, '');
    let before = '';
    for (let k = 1; k <= ids.length; k++) {
      const now = textAt(k);
      // One token per step, so the window is this token's new characters.
      if (k > minTokens && now.length > before.length) {
        for (const s of stops) {
          const at = now.indexOf(s, Math.max(0, before.length + 1 - s.length));
          if (at >= 0) return { text: now.slice(0, include ? at + s.length : at), which: s };
        }
      }
      before = now;
    }
    return { text: before, which: null };
  }

  it('matches a full-decode reference of vLLM\'s rule on random token streams', () => {
    const rng = RowRng.fromSeed(2024);
    let stopped = 0;
    for (let trial = 0; trial < 3000; trial++) {
      const include = trial % 2 === 1;
      const minTokens = trial % 3 === 2 ? 1 + (trial % 5) : 0;
      const params: RowOutputParams = { maxTokens: 12, stopTokenIds: [], stopStrings: STOPS, ignoreEos: false, includeStopStrInOutput: include, minTokens };
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
      const expected = reference(ids, STOPS, include, minTokens);
      assert.equal(released, expected.text, `trial ${trial}: ids ${ids.join(',')} minTokens ${minTokens}`);
      if (expected.which !== null) {
        stopped++;
        assert.deepEqual(finished, { reason: 'stop', stoppedBy: expected.which });
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
