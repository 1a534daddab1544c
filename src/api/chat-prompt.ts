/**
 * Chat messages → prompt token ids: the model's chat template rendered, BOS prepended unless the
 * template already put it first (so a prompt never carries two), and for an LVLM each image
 * placeholder expanded to the model's image tokens, with the spans recorded.
 */
import { ChatTemplate, ChatTemplateError, type ChatMessage } from '../../models/tokenizers/chat-template.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { ImageSpan } from '../../models/compiler/step-geometry.js';
import { badRequest } from './errors.js';
import { controlText } from './generation/token-text.js';
import { checkPromptChars } from './prompts.js';
import type { ChatMessageInput } from './schemas/chat.js';

/** What the prompt side of an LVLM needs: how an image is written in text and how many tokens it becomes. */
export interface ImagePromptFacts {
  /** The placeholder the chat template writes per image (e.g. "<image>"). */
  placeholder: string;
  imageTokenId: number;
  tokensPerImage: number;
}

/**
 * Messages as the template sees them. A text-only model gets text parts joined into one string (by
 * newlines, as vLLM does), which every template understands. An LVLM's template gets the parts
 * themselves, images as `{type: "image"}` (HF's multimodal chat format; the URL stays out of the
 * template), so it places each image's placeholder.
 */
function templateMessages(messages: readonly ChatMessageInput[], withImages: boolean): ChatMessage[] {
  return messages.map((m) => {
    const content = typeof m.content === 'string' || m.content == null
      ? (m.content ?? '')
      : withImages
        ? m.content.map((p) => (p.type === 'text' ? { type: 'text', text: p.text } : { type: 'image' }))
        : m.content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('\n');
    return m.name === undefined ? { role: m.role, content } : { role: m.role, content, name: m.name };
  });
}

export interface ChatPromptContext {
  tokenizer: Tokenizer;
  template: ChatTemplate | null;
  maxPromptChars: number;
  /** Present when the model takes images. */
  images: ImagePromptFacts | null;
}

export interface RenderedPrompt {
  ids: number[];
  text: string;
  /** Where each image's tokens sit in `ids`, in image order. */
  images: ImageSpan[];
}

/**
 * `suffix` is text appended after the template's output before tokenizing (an evaluation scores an
 * answer as the assistant's reply this way); requests never pass one.
 */
export function renderChatPrompt(messages: readonly ChatMessageInput[], addGenerationPrompt: boolean, ctx: ChatPromptContext, imageCount = 0, suffix = ''): RenderedPrompt {
  if (!ctx.template) throw badRequest('this model has no chat template; use /v1/completions', 'messages', 'no_chat_template');
  const { tokenizer } = ctx;
  const bos = controlText(tokenizer, tokenizer.bosId);
  const eosId = tokenizer.stopIds.find((id) => id !== tokenizer.bosId);
  let text: string;
  try {
    text = ctx.template.render({ messages: templateMessages(messages, ctx.images !== null), addGenerationPrompt, bosToken: bos, eosToken: controlText(tokenizer, eosId ?? null) }) + suffix;
  } catch (e) {
    // raise_exception() in a template is how templates reject a conversation (e.g. roles that do not alternate).
    if (e instanceof ChatTemplateError) throw badRequest(e.message, 'messages', 'chat_template_error');
    throw e;
  }
  checkPromptChars(text.length, 'messages', ctx.maxPromptChars);
  const startsWithBos = tokenizer.bosId !== null && bos !== null && text.startsWith(bos);
  const body = startsWithBos ? text.slice(bos!.length) : text;
  const lead = tokenizer.bosId !== null ? [tokenizer.bosId] : [];
  if (!ctx.images) return { ids: startsWithBos ? [...lead, ...tokenizer.encode(body)] : tokenizer.encode(text, { addBos: true }), text, images: [] };
  return { ...expandImages(body, lead, imageCount, ctx.images, tokenizer), text };
}

/**
 * The processor step of an LVLM: each placeholder in the rendered text becomes `tokensPerImage`
 * copies of the image token. When the tokenizer knows the placeholder as one added token (HF
 * tokenizers of LLaVA checkpoints), the whole text is encoded at once, exactly as transformers'
 * processor does, and each image token is then repeated. Otherwise (a llama2.c tokenizer) the text
 * between placeholders is encoded piece by piece, the pieces after a placeholder as continuations
 * (no dummy-prefix space), as an added token would leave them.
 */
function expandImages(body: string, lead: number[], expected: number, facts: ImagePromptFacts, tokenizer: Tokenizer): Omit<RenderedPrompt, 'text'> {
  const pieces = body.split(facts.placeholder);
  const found = pieces.length - 1;
  if (found !== expected) {
    throw badRequest(
      found > expected
        ? `messages: the text holds the image placeholder ${JSON.stringify(facts.placeholder)} ${found - expected} more time(s) than there are images; it is reserved for images`
        : `messages: the chat template placed ${found} of ${expected} images`,
      'messages',
      'image_placeholder_mismatch',
    );
  }
  const ids = [...lead];
  const images: ImageSpan[] = [];
  const asOne = tokenizer.encode(facts.placeholder);
  if (asOne.length === 1 && asOne[0] === facts.imageTokenId) {
    for (const id of tokenizer.encode(body)) {
      if (id !== facts.imageTokenId) ids.push(id);
      else {
        images.push({ image: images.length, start: ids.length, length: facts.tokensPerImage });
        for (let t = 0; t < facts.tokensPerImage; t++) ids.push(id);
      }
    }
    return { ids, images };
  }
  pieces.forEach((piece, k) => {
    if (k > 0) {
      images.push({ image: k - 1, start: ids.length, length: facts.tokensPerImage });
      for (let t = 0; t < facts.tokensPerImage; t++) ids.push(facts.imageTokenId);
    }
    if (piece.length) ids.push(...tokenizer.encode(piece, { continuation: k > 0 }));
  });
  return { ids, images };
}

export function compileChatTemplate(source: string | null): ChatTemplate | null {
  return source === null ? null : new ChatTemplate(source);
}
