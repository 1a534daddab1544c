/**
 * Jinja chat templates (tokenizer_config.json `chat_template`), rendered with @huggingface/jinja
 * using the variables transformers' apply_chat_template passes.
 */
import { Template } from '@huggingface/jinja';

export type ChatContentPart = { type: 'text'; text: string } | { type: 'image' } | { type: string; [key: string]: unknown };

export interface ChatMessage {
  role: string;
  content: string | ChatContentPart[];
  [key: string]: unknown;
}

export interface ChatTemplateInput {
  messages: readonly ChatMessage[];
  addGenerationPrompt?: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** Further template variables (tools, documents, custom flags). */
  extra?: Record<string, unknown>;
}

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

/** A template parsed once and rendered per request. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(readonly source: string) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
  }

  render(input: ChatTemplateInput): string {
    try {
      return this.template.render({
        ...input.extra,
        messages: input.messages,
        add_generation_prompt: input.addGenerationPrompt ?? false,
        bos_token: input.bosToken ?? '',
        eos_token: input.eosToken ?? '',
      });
    } catch (e) {
      // raise_exception() in a template lands here too, with the template author's message.
      throw new ChatTemplateError(`chat template failed: ${(e as Error).message}`, { cause: e });
    }
  }
}

export function renderChatTemplate(source: string, input: ChatTemplateInput): string {
  return new ChatTemplate(source).render(input);
}

/**
 * The template a tokenizer_config.json names: a string, or a list of named templates of which
 * transformers uses "default" unless asked for another.
 */
export function chatTemplateFromConfig(tokenizerConfig: Record<string, unknown>, name = 'default'): string | null {
  const t = tokenizerConfig.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const hit = t.find((e): e is { name: string; template: string } => typeof e?.template === 'string' && e.name === name);
    return hit?.template ?? null;
  }
  return null;
}
