/** The shipped cloze sets, and the JSONL parser's errors. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatasetError, loadDataset, parseDataset, type McItem } from '../../src/eval/dataset.js';
import { CLOZE_DIR } from './cli-runner.js';

describe('stories-cloze dataset', () => {
  it('parses, has ≥150 items with valid answers, and keeps calibration and held-out prompts apart', async () => {
    const [calibration, heldout] = await Promise.all(
      ['calibration', 'heldout'].map(async (f) => {
        const d = await loadDataset(join(CLOZE_DIR, `${f}.jsonl`));
        if (d.kind !== 'mc') return assert.fail(`${f} is multiple choice`);
        return d.items;
      }),
    ) as [McItem[], McItem[]];
    assert.ok(calibration.length >= 50 && heldout.length >= 100, `${calibration.length} + ${heldout.length}`);
    assert.ok(calibration.length + heldout.length >= 150);
    const positions = new Set<number>();
    for (const item of [...calibration, ...heldout]) {
      assert.ok(item.choices.length >= 2 && item.choices.length <= 4, item.prompt);
      assert.ok(Number.isInteger(item.answer) && item.answer >= 0 && item.answer < item.choices.length, item.prompt);
      assert.equal(new Set(item.choices).size, item.choices.length, `duplicate choice in ${item.prompt}`);
      positions.add(item.answer);
    }
    assert.deepEqual([...positions].sort(), [0, 1, 2], 'answers sit in every position');
    const calPrompts = new Set(calibration.map((i) => i.prompt));
    assert.equal(heldout.filter((i) => calPrompts.has(i.prompt)).length, 0, 'no held-out item is in the calibration set');
    // Every line is an item: no blank or stray lines in the shipped files.
    for (const f of ['calibration', 'heldout']) {
      const lines = readFileSync(join(CLOZE_DIR, `${f}.jsonl`), 'utf8').trimEnd().split('\n');
      assert.equal(lines.length, f === 'calibration' ? calibration.length : heldout.length);
    }
  });
});

describe('parseDataset', () => {
  const ok = '{"prompt": "The cat sat on the", "choices": [" mat", " sky"], "answer": 0}';

  it('reads MC and plain-text files, skipping blank lines', () => {
    const mc = parseDataset(`${ok}\n\n${ok}\n`, 'x.jsonl');
    assert.equal(mc.kind, 'mc');
    assert.equal(mc.items.length, 2);
    const text = parseDataset('{"text": "Once upon a time"}\n', 'y.jsonl');
    assert.deepEqual(text, { kind: 'nll', items: [{ text: 'Once upon a time' }] });
  });

  it('names the line of a bad item', () => {
    const cases: [string, RegExp][] = [
      [`${ok}\n{"prompt": "a", "choices": [" b", " c"], "answer": 2}`, /x\.jsonl:2: .*answer: answer must index one of the choices/],
      [`${ok}\n${ok}\n{not json`, /x\.jsonl:3: not JSON/],
      [`{"prompt": "a", "choices": [" b"], "answer": 0}`, /x\.jsonl:1: .*choices/],
      [`{"prompt": "a", "choices": [" b", " c"], "answer": 0, "extra": 1}`, /x\.jsonl:1: .*extra/],
      [`${ok}\n{"text": "hello"}`, /x\.jsonl:2: mixes plain-text items .*line 1/],
      ['\n\n', /x\.jsonl: no items/],
    ];
    for (const [text, re] of cases) assert.throws(() => parseDataset(text, 'x.jsonl'), (e: unknown) => e instanceof DatasetError && re.test(e.message), text);
  });
});
