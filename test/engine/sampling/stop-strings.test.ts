import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { StopStringMatcher } from '../../../src/engine/sampling/stop-strings.js';

describe('StopStringMatcher', () => {
  it('passes text through when there are no stop strings', () => {
    const m = new StopStringMatcher([], false);
    assert.deepEqual(m.push('abc'), { text: 'abc', matched: null });
  });

  it('holds back only a suffix that could start a stop string', () => {
    const m = new StopStringMatcher(['STOP', 'xyz'], false);
    assert.deepEqual(m.push('hello S'), { text: 'hello ', matched: null });
    assert.equal(m.heldText, 'S');
    assert.deepEqual(m.push('T'), { text: '', matched: null });
    assert.deepEqual(m.push('a'), { text: 'STa', matched: null });
    assert.deepEqual(m.push('x'), { text: '', matched: null });
    assert.equal(m.flush(), 'x');
  });

  it('matches across chunks and truncates before the stop string', () => {
    const m = new StopStringMatcher(['STOP'], false);
    assert.deepEqual(m.push('ab ST'), { text: 'ab ', matched: null });
    assert.deepEqual(m.push('OP and more'), { text: '', matched: 'STOP' });
    assert.throws(() => m.push('x'));
  });

  it('keeps the stop string when asked to', () => {
    const m = new StopStringMatcher(['STOP'], true);
    m.push('ab ST');
    assert.deepEqual(m.push('OPxyz'), { text: 'STOP', matched: 'STOP' });
  });

  it('picks the first listed stop string that ends in the new text, as vLLM does', () => {
    // Neither the earliest start ("bc") nor the first to complete: list order.
    assert.deepEqual(new StopStringMatcher(['cd', 'bc'], false).push('abcd'), { text: 'ab', matched: 'cd' });
    assert.deepEqual(new StopStringMatcher(['bc', 'cd'], false).push('abcd'), { text: 'a', matched: 'bc' });
    assert.deepEqual(new StopStringMatcher(['bc', 'b'], false).push('abcd'), { text: 'a', matched: 'bc' });
    assert.deepEqual(new StopStringMatcher(['cd', 'bc'], true).push('abcde'), { text: 'abcd', matched: 'cd' });
  });

  it('only counts occurrences that end in the new text', () => {
    // "ab" completed inside text that was pushed while matching was off (min_tokens): it cannot match later.
    const m = new StopStringMatcher(['ab', 'abcd'], false);
    assert.deepEqual(m.push('xab', false), { text: 'x', matched: null });
    assert.deepEqual(m.push('c'), { text: '', matched: null });
    assert.deepEqual(m.push('d'), { text: '', matched: 'abcd' });
  });

  it('matches nothing on a push without new text', () => {
    const m = new StopStringMatcher(['ab'], false);
    m.push('a');
    assert.deepEqual(m.push(''), { text: '', matched: null });
  });

  it('holds back overlapping candidates correctly', () => {
    const m = new StopStringMatcher(['aab'], false);
    assert.deepEqual(m.push('aa'), { text: '', matched: null });
    assert.deepEqual(m.push('a'), { text: 'a', matched: null });
    assert.deepEqual(m.push('b'), { text: '', matched: 'aab' });
  });

  it('ignores empty stop strings', () => {
    assert.deepEqual(new StopStringMatcher([''], false).push('abc'), { text: 'abc', matched: null });
  });
});
