import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HfTokenizer, loadHfTokenizer } from '../../models/tokenizers/hf-tokenizer.js';
import { compileChatTemplate, renderChatPrompt } from '../../src/api/chat-prompt.js';
import { withTempDir } from '../helpers/temp-dir.js';

/** A small SentencePiece-style BPE with byte fallback, laid out as Llama's tokenizer.json. */
function llamaStyleTokenizer(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '▁h', 'll', '▁he', '▁hell', '▁hello', '▁w', 'or', '▁wor', '▁worl', '▁world'];
  pieces.forEach((p, i) => (vocab[p] = 259 + i));
  const merges = ['▁ h', 'l l', '▁h e', '▁he ll', '▁hell o', '▁ w', 'o r', '▁w or', '▁wor l', '▁worl d'];
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges },
  };
}

function wordLevelTokenizer(): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: [{ id: 3, content: '<eos>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab: { '[UNK]': 0, hello: 1, world: 2, '<eos>': 3 }, unk_token: '[UNK]' },
  };
}

const llamaConfig = { bos_token: '<s>', eos_token: '</s>', add_bos_token: true, clean_up_tokenization_spaces: false };

describe('HF tokenizer', () => {
  it('encodes with merges and BOS, and decodes back', () => {
    const tok = HfTokenizer.create(llamaStyleTokenizer(), llamaConfig);
    assert.equal(tok.bosId, 1);
    assert.deepEqual(tok.stopIds, [2]);
    assert.equal(tok.vocabSize, 259 + 18);
    const ids = tok.encode('hello world', { addBos: true });
    assert.deepEqual(ids, [1, tok.tokenToId('▁hello'), tok.tokenToId('▁world')]);
    assert.deepEqual(tok.encode('hello world'), ids.slice(1), 'no BOS unless asked, whatever the post-processor does');
    assert.equal(tok.decode(ids, { skipSpecial: true }), 'hello world');
    assert.equal(tok.decode(ids), '<s> hello world');
    assert.equal(tok.idToPiece(ids[1]!), '▁hello');
  });

  it('falls back to bytes for unknown characters and reassembles them', () => {
    const tok = HfTokenizer.create(llamaStyleTokenizer(), llamaConfig);
    for (const s of ['hi 😀', 'héllo wörld', 'x']) {
      const ids = tok.encode(s, { addBos: true });
      assert.ok(ids.some((id) => id >= 3 && id < 259), `byte fallback used for ${s}`);
      assert.equal(tok.decode(ids, { skipSpecial: true }), s);
    }
  });

  it('handles empty input and empty id lists', () => {
    const tok = HfTokenizer.create(llamaStyleTokenizer(), llamaConfig);
    assert.deepEqual(tok.encode(''), []);
    assert.deepEqual(tok.encode('', { addBos: true }), [1]);
    assert.equal(tok.decode([]), '');
  });

  it('decides BOS from add_bos_token, else from what the post-processor adds', () => {
    const noFlag = HfTokenizer.create(llamaStyleTokenizer(), { bos_token: '<s>', eos_token: '</s>' });
    assert.equal(noFlag.bosId, 1);
    const off = HfTokenizer.create(llamaStyleTokenizer(), { ...llamaConfig, add_bos_token: false });
    assert.equal(off.bosId, null);
    assert.deepEqual(off.encode('hello', { addBos: true }), [off.tokenToId('▁hello')]);
    const words = HfTokenizer.create(wordLevelTokenizer(), {});
    assert.equal(words.bosId, null);
    assert.deepEqual(words.stopIds, []);
  });

  it('reads special tokens written as AddedToken objects, and extra stop ids', () => {
    const tok = HfTokenizer.create(
      wordLevelTokenizer(),
      { eos_token: { __type: 'AddedToken', content: '<eos>', special: true } },
      { extraStopIds: [3, 2], vocabSize: 8 },
    );
    assert.deepEqual(tok.stopIds, [3, 2]);
    assert.deepEqual(tok.encode('hello world'), [1, 2]);
    assert.equal(tok.decode([1, 2, 3], { skipSpecial: true }), 'hello world');
    assert.equal(tok.vocabSize, 8);
    assert.equal(tok.idToPiece(7), '', 'padded ids have no piece');
    assert.equal(tok.decode([1, 7, 2]), 'hello world');
    assert.throws(() => tok.idToPiece(8), RangeError);
    assert.throws(() => HfTokenizer.create(wordLevelTokenizer(), { eos_token: '</s>' }), /eos_token "<\/s>" is not in the vocabulary/);
  });

  it('loads from a directory and explains a broken file', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(llamaStyleTokenizer()));
      await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(llamaConfig));
      const tok = await loadHfTokenizer(dir);
      assert.equal(tok.decode(tok.encode('hello', { addBos: true }), { skipSpecial: true }), 'hello');
      const bare = join(dir, 'bare');
      await mkdir(bare);
      await writeFile(join(bare, 'tokenizer.json'), JSON.stringify(wordLevelTokenizer()));
      assert.equal((await loadHfTokenizer(bare)).bosId, null, 'tokenizer_config.json is optional');
      await writeFile(join(bare, 'tokenizer.json'), '{"model": ');
      await assert.rejects(loadHfTokenizer(bare), /tokenizer\.json: invalid JSON/);
      await writeFile(join(bare, 'tokenizer.json'), JSON.stringify({ model: { type: 'Nope' } }));
      await assert.rejects(loadHfTokenizer(bare), /cannot build the tokenizer/);
    });
  });

  it('an LVLM prompt with the placeholder as an added token: encoded whole, as transformers\' processor does, then expanded', () => {
    const json = llamaStyleTokenizer();
    const IMAGE = 277;
    (json.added_tokens as unknown[]).push({ id: IMAGE, content: '<image>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    const tok = HfTokenizer.create(json, llamaConfig);
    const template = compileChatTemplate("{% for m in messages %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>\n{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endfor %}");
    const image = { type: 'image_url' as const, image_url: { url: 'data:,', detail: undefined } };
    const prompt = renderChatPrompt([{ role: 'user', content: [{ type: 'text', text: 'hello ' }, image, { type: 'text', text: 'world' }, image] }], false, {
      tokenizer: tok, template, maxPromptChars: 10_000, images: { placeholder: '<image>', imageTokenId: IMAGE, tokensPerImage: 3 },
    }, 2);
    // The library's own encoding of the rendered text, with each image token repeated.
    const whole = tok.encode('hello <image>\nworld<image>\n', { addBos: true });
    assert.deepEqual(prompt.ids, whole.flatMap((id) => (id === IMAGE ? [IMAGE, IMAGE, IMAGE] : [id])));
    assert.deepEqual(prompt.images, [
      { image: 0, start: whole.indexOf(IMAGE), length: 3 },
      { image: 1, start: whole.lastIndexOf(IMAGE) + 2, length: 3 },
    ]);
  });
});
