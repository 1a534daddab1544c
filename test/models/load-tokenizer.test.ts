import assert from 'node:assert/strict';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveModel } from '../../models/resolve.js';
import { HfTokenizer } from '../../models/tokenizers/hf-tokenizer.js';
import { Llama2cTokenizer } from '../../models/tokenizers/llama2c-tokenizer.js';
import { loadChatTemplateSource, loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import { modelsDir, stories260K } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

describe('tokenizer selection', () => {
  it('loads llama2.c tokenizers from paths, directories and resolved models', async () => {
    const fromPaths = await loadTokenizer({ tokenizer: stories260K.tokenizer, checkpoint: stories260K.checkpoint });
    assert.ok(fromPaths instanceof Llama2cTokenizer);
    assert.equal(fromPaths.vocabSize, 512);
    assert.deepEqual(fromPaths.encode('Once upon a time', { addBos: true }), [1, 403, 407, 261, 378]);
    const fromDir = await loadTokenizer(join(modelsDir, 'aidreams260K'));
    assert.equal(fromDir.vocabSize, 512);
    const resolved = await resolveModel('stories260K', { modelsDir, env: {} });
    assert.ok((await loadTokenizer(resolved)) instanceof Llama2cTokenizer);
    await assert.rejects(loadTokenizer({ tokenizer: stories260K.tokenizer }), /needs the model's vocabulary size/);
  });

  it("uses tiny-llava's tokenizer_file with the vocabulary size from its text_config", async () => {
    const tok = await loadTokenizer(join(modelsDir, 'tiny-llava'));
    assert.ok(tok instanceof Llama2cTokenizer);
    assert.equal(tok.vocabSize, 512);
    assert.deepEqual(tok.encode('Once upon a time', { addBos: true }), [1, 403, 407, 261, 378]);
    const template = await loadChatTemplateSource(join(modelsDir, 'tiny-llava'));
    assert.ok(template?.startsWith('{% for message in messages %}'));
  });

  it('prefers tokenizer.json and collects stop ids from the model configs', async () => {
    await withTempDir(async (dir) => {
      const tokenizerJson = {
        added_tokens: [{ id: 2, content: '</s>', special: true }, { id: 3, content: '<eot>', special: true }],
        normalizer: null,
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: null,
        decoder: null,
        model: { type: 'WordLevel', vocab: { '[UNK]': 0, hi: 1, '</s>': 2, '<eot>': 3 }, unk_token: '[UNK]' },
      };
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
      await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
      await writeFile(join(dir, 'config.json'), JSON.stringify({ vocab_size: 16, eos_token_id: 2 }));
      await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [2, 3] }));
      await copyFile(stories260K.tokenizer, join(dir, 'tok512.bin'));
      const tok = await loadTokenizer(dir);
      assert.ok(tok instanceof HfTokenizer);
      assert.deepEqual(tok.stopIds, [2, 3]);
      assert.equal(tok.vocabSize, 16);
      assert.equal(await loadChatTemplateSource(dir), null);
      await writeFile(join(dir, 'chat_template.jinja'), '{{ messages[0].content }}');
      assert.equal(await loadChatTemplateSource(dir), '{{ messages[0].content }}');
    });
  });
});
