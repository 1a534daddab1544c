/**
 * POST /tokenize and /detokenize in vLLM's shapes. A `messages` body is tokenized exactly as
 * /v1/chat/completions would feed it to the model.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { renderChatPrompt } from '../chat-prompt.js';
import { imageParams } from '../images/chat-images.js';
import type { RouteOptions } from '../context.js';
import { badRequest } from '../errors.js';
import { checkModelName } from '../model-name.js';
import { checkPromptChars } from '../prompts.js';
import { parseWith } from '../validation.js';

export const tokenizeRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { model, tokenizer } = ctx;

  const tokenizeBody = z.union([ctx.schemas.tokenize.completion, ctx.schemas.tokenize.chat]);
  app.post('/tokenize', { schema: { summary: 'Token ids of a prompt, or of messages as chat feeds them (vLLM)', tags: ['tokens'], body: tokenizeBody } }, async (request) => {
    const isChat = typeof request.body === 'object' && request.body !== null && 'messages' in request.body;
    let ids: number[];
    let returnStrs: boolean;
    if (isChat) {
      const body = parseWith(ctx.schemas.tokenize.chat, request.body);
      checkModelName(body.model, model.id);
      // Image parts become their placeholder tokens; counting them needs no decoding.
      const images = ctx.images ? imageParams(body.messages).length : 0;
      ids = renderChatPrompt(body.messages, body.add_generation_prompt, { tokenizer, template: ctx.chatTemplate, maxPromptChars: model.maxPromptChars, images: ctx.images?.prompt ?? null }, images).ids;
      returnStrs = body.return_token_strs;
    } else {
      const body = parseWith(ctx.schemas.tokenize.completion, request.body);
      checkModelName(body.model, model.id);
      checkPromptChars(body.prompt.length, 'prompt', model.maxPromptChars);
      ids = tokenizer.encode(body.prompt, { addBos: body.add_special_tokens });
      returnStrs = body.return_token_strs;
    }
    return {
      count: ids.length,
      max_model_len: model.maxModelLen,
      tokens: ids,
      ...(returnStrs ? { token_strs: ids.map((id) => tokenizer.idToPiece(id)) } : {}),
    };
  });

  app.post('/detokenize', { schema: { summary: 'Text of token ids (vLLM)', tags: ['tokens'], body: ctx.schemas.tokenize.detokenize } }, async (request) => {
    const body = parseWith(ctx.schemas.tokenize.detokenize, request.body);
    checkModelName(body.model, model.id);
    body.tokens.forEach((t, i) => {
      if (t >= model.vocabSize) throw badRequest(`tokens.${i}: token id ${t} is outside the vocabulary [0, ${model.vocabSize})`, `tokens.${i}`, 'invalid_token_id');
    });
    return { prompt: ctx.tokenText.sequence(body.tokens) };
  });
};
