/**
 * Chat messages → prompt token ids: image parts validated (and, until a vision tower exists, refused),
 * text parts joined, the model's chat template rendered, and BOS prepended unless the template already
 * put it first, so a prompt never carries two.
 */
import { ChatTemplate, ChatTemplateError, type ChatMessage } from '../../models/tokenizers/chat-template.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { Limits } from '../config/schema.js';
import { badRequest } from './errors.js';
import { controlText } from './generation/token-text.js';
import type { ImageFetcher } from './images/image-fetch.js';
import { isRemoteImageUrl, validateImageUrl } from './images/image-url.js';
import { checkPromptChars } from './prompts.js';
import type { ChatMessageInput } from './schemas/chat.js';

/**
 * Validates every image part (count, data URL, bytes, pixels; remote URLs fetched when the server
 * allows it) and then refuses them all: the model has no vision tower. Validation comes first so
 * clients learn about a bad image before anything else, and every check that needs no network runs
 * before the first fetch.
 */
export async function checkImages(
  messages: readonly ChatMessageInput[],
  limits: Limits,
  modelName: string,
  fetcher: ImageFetcher | null = null,
  signal?: AbortSignal,
): Promise<void> {
  let first: string | null = null;
  let count = 0;
  const remote: { url: URL; param: string }[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      if (part.type !== 'image_url') return;
      const param = `messages.${i}.content.${j}.image_url.url`;
      if (++count > limits.maxImagesPerRequest) throw badRequest(`${param}: at most ${limits.maxImagesPerRequest} images per request (max_images)`, param, 'too_many_images');
      const url = part.image_url.url;
      if (fetcher && isRemoteImageUrl(url)) remote.push({ url: fetcher.precheck(url, param), param });
      else validateImageUrl(url, param, limits);
      first ??= `messages.${i}.content.${j}`;
    });
  });
  // One at a time: at most one fetched body per request is held in memory.
  for (const { url, param } of remote) await fetcher!.fetch(url, param, signal);
  if (first !== null) throw badRequest(`${first}: model ${modelName} has no vision tower; image inputs are not supported`, first, 'model_has_no_vision_tower');
}

/** Text parts become one string (joined by newlines, as vLLM does), which every template understands. */
function templateMessages(messages: readonly ChatMessageInput[]): ChatMessage[] {
  return messages.map((m) => {
    const content = typeof m.content === 'string' ? m.content : (m.content ?? []).flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('\n');
    return m.name === undefined ? { role: m.role, content } : { role: m.role, content, name: m.name };
  });
}

export interface ChatPromptContext {
  tokenizer: Tokenizer;
  template: ChatTemplate | null;
  maxPromptChars: number;
}

export function renderChatPrompt(messages: readonly ChatMessageInput[], addGenerationPrompt: boolean, ctx: ChatPromptContext): { ids: number[]; text: string } {
  if (!ctx.template) throw badRequest('this model has no chat template; use /v1/completions', 'messages', 'no_chat_template');
  const { tokenizer } = ctx;
  const bos = controlText(tokenizer, tokenizer.bosId);
  const eosId = tokenizer.stopIds.find((id) => id !== tokenizer.bosId);
  let text: string;
  try {
    text = ctx.template.render({ messages: templateMessages(messages), addGenerationPrompt, bosToken: bos, eosToken: controlText(tokenizer, eosId ?? null) });
  } catch (e) {
    // raise_exception() in a template is how templates reject a conversation (e.g. roles that do not alternate).
    if (e instanceof ChatTemplateError) throw badRequest(e.message, 'messages', 'chat_template_error');
    throw e;
  }
  checkPromptChars(text.length, 'messages', ctx.maxPromptChars);
  if (tokenizer.bosId !== null && bos && text.startsWith(bos)) return { ids: [tokenizer.bosId, ...tokenizer.encode(text.slice(bos.length))], text };
  return { ids: tokenizer.encode(text, { addBos: true }), text };
}


export function compileChatTemplate(source: string | null): ChatTemplate | null {
  return source === null ? null : new ChatTemplate(source);
}
