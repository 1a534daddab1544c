import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ChatTemplate, ChatTemplateError, chatTemplateFromConfig, renderChatTemplate } from '../../models/tokenizers/chat-template.js';
import { modelsDir } from '../helpers/models-dir.js';

const tinyLlavaConfig = JSON.parse(readFileSync(join(modelsDir, 'tiny-llava', 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

const LLAMA2 =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}' +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe('chat templates', () => {
  it("renders tiny-llava's template with text and image parts", () => {
    const source = chatTemplateFromConfig(tinyLlavaConfig);
    assert.ok(source);
    const t = new ChatTemplate(source);
    const out = t.render({
      messages: [
        { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is this?' }] },
        { role: 'assistant', content: 'A ball.' },
        { role: 'user', content: 'And then?' },
      ],
      addGenerationPrompt: true,
    });
    assert.equal(out, 'USER: <image>\nWhat is this? ASSISTANT: A ball.\nUSER: And then? ASSISTANT:');
    assert.equal(t.render({ messages: [{ role: 'user', content: 'Hi' }] }), 'USER: Hi ');
  });

  it('renders a Llama-2 template with BOS/EOS and a system prompt', () => {
    const out = renderChatTemplate(LLAMA2, {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: ' Hello ' },
        { role: 'assistant', content: 'Hi.' },
        { role: 'user', content: 'Bye' },
      ],
      bosToken: '<s>',
      eosToken: '</s>',
    });
    // strip() applies to the whole content, system block included, so the inner leading space stays.
    assert.equal(out, '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hello [/INST] Hi. </s><s>[INST] Bye [/INST]');
  });

  it('renders ChatML with and without the generation prompt', () => {
    const messages = [
      { role: 'system', content: 'S' },
      { role: 'user', content: 'U' },
    ];
    assert.equal(renderChatTemplate(CHATML, { messages }), '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n');
    assert.ok(renderChatTemplate(CHATML, { messages, addGenerationPrompt: true }).endsWith('<|im_start|>assistant\n'));
  });

  it('reports template failures as ChatTemplateError', () => {
    assert.throws(
      () => renderChatTemplate(LLAMA2, { messages: [{ role: 'assistant', content: 'x' }] }),
      (e: unknown) => e instanceof ChatTemplateError && /Conversation roles must alternate/.test(e.message),
    );
    assert.throws(() => new ChatTemplate('{% for m in messages %}'), (e: unknown) => e instanceof ChatTemplateError && /does not parse/.test(e.message));
  });

  it('picks the default of several named templates', () => {
    const cfg = { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] };
    assert.equal(chatTemplateFromConfig(cfg), 'D');
    assert.equal(chatTemplateFromConfig(cfg, 'tool_use'), 'T');
    assert.equal(chatTemplateFromConfig({}), null);
  });
});
