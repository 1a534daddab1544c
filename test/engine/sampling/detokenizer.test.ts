import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { IncrementalDetokenizer } from '../../../src/engine/sampling/detokenizer.js';
import { BOS, EOS, pieceTokenizer } from './piece-tokenizer.js';

const tok = pieceTokenizer();

function stream(prompt: number[], output: number[]): string[] {
  const d = new IncrementalDetokenizer(tok, prompt);
  return output.map((id) => d.append(id));
}

describe('PieceTokenizer (test fixture)', () => {
  it('has llama2.c decode semantics', () => {
    assert.equal(tok.decode([BOS, ...tok.ids('▁Hello', '▁world')], { skipSpecial: true }), 'Hello world');
    assert.equal(tok.decode(tok.ids('▁Hello', '▁world')), ' Hello world');
    assert.equal(tok.decode(tok.ids('<0xE4>', '<0xBD>')), '\uFFFD');
    assert.equal(tok.decode(tok.ids('<0xE4>', '<0xBD>', '<0xA0>')), '你');
    assert.equal(tok.decode(tok.encode('Hello 你!', { addBos: true }), { skipSpecial: true }), 'Hello 你!');
  });
});

describe('IncrementalDetokenizer', () => {
  it('drops the space after BOS only for the first token, as a full decode does', () => {
    assert.deepEqual(stream([BOS], tok.ids('▁Hello', '▁world', '!')), ['Hello', ' world', '!']);
    assert.deepEqual(stream([BOS, tok.idOf('▁Hello')], tok.ids('▁world')), [' world']);
  });

  it('uses the prompt tail as context, whatever the prompt length', () => {
    const prompt = [BOS, ...tok.ids('▁Once', '▁upon', '▁the', '▁world', '▁Hello', '▁the')];
    assert.deepEqual(stream(prompt, tok.ids('▁world', 'end')), [' world', 'end']);
  });

  it('holds back a character split over byte-fallback tokens until it is complete', () => {
    assert.deepEqual(stream([BOS], tok.ids('a', '<0xE4>', '<0xBD>', '<0xA0>', 'b')), ['a', '', '', '你', 'b']);
    assert.deepEqual(stream([BOS], tok.ids('<0xC3>', '<0xA9>')), ['', 'é']);
  });

  it('releases the complete text before an incomplete character at once', () => {
    assert.deepEqual(stream([BOS], tok.ids('a', 'x<0xE4>', '<0xBD>', '<0xA0>')), ['a', 'x', '', '你']);
  });

  it('emits an invalid byte as U+FFFD once the text after it is complete', () => {
    assert.deepEqual(stream([BOS], tok.ids('<0xE4>', 'a')), ['', '\uFFFDa']);
  });

  it('skips special tokens and keeps decoding after them', () => {
    assert.deepEqual(stream([BOS], [...tok.ids('▁Hello'), EOS, ...tok.ids('▁world')]), ['Hello', '', ' world']);
  });

  it('finish() releases complete characters and drops an unfinished one', () => {
    const d = new IncrementalDetokenizer(tok, [BOS]);
    assert.equal(d.append(tok.idOf('a')), 'a');
    assert.equal(d.append(tok.idOf('<0xE4>')), '');
    assert.equal(d.finish(), '');
  });

  it('streams exactly the full decode over a long generation', () => {
    const ids = tok.ids('▁Hello', 'x<0xE4>', '<0xBD>', '<0xA0>', '▁the', '<0xC3>', '<0xA9>', 'ab', '<0xE4>', 'c', '▁world');
    const output: number[] = [];
    for (let i = 0; i < 2000; i++) output.push(ids[(i * 7) % ids.length]!);
    const d = new IncrementalDetokenizer(tok, [BOS]);
    let text = '';
    for (const id of output) text += d.append(id);
    text += d.finish();
    assert.equal(text, tok.decode([BOS, ...output], { skipSpecial: true }).replace(/\uFFFD+$/, ''));
  });
});
