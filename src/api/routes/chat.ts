/**
 * POST /v1/chat/completions. As for completions: cheap validation, then admission, then the heavy
 * work (image decoding, template rendering, tokenizing).
 */
import type { FastifyPluginAsync } from 'fastify';
import { checkCalibrationPrompt, parseCalibration } from '../calibration.js';
import { renderChatPrompt } from '../chat-prompt.js';
import type { RouteOptions } from '../context.js';
import { badRequest, shutDownMidRequest } from '../errors.js';
import { ChatResponder } from '../generation/chat-responder.js';
import { execute, fanOut, responseId, streamSettings } from '../generation/execute.js';
import { loadChatImages } from '../images/chat-images.js';
import { clientGoneSignal, ImageFetcher } from '../images/image-fetch.js';
import { checkModelName } from '../model-name.js';
import { checkLogprobEntries, chatLogprobTerms } from '../response-size.js';
import { buildSampling, resolveMaxTokens } from '../sampling.js';
import { parseWith } from '../validation.js';

export const chatRoute: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { model, config } = ctx;
  const imageFetcher = config.imageFetch.enabled ? new ImageFetcher({ ...config.imageFetch, ...config.limits }) : null;

  const schema = { summary: 'Chat completions (OpenAI, with vLLM\'s extra fields and calibration)', tags: ['generation'], body: ctx.schemas.chat };
  app.post('/v1/chat/completions', { config: { generation: true }, schema }, async (request, reply) => {
    const arrivedAt = performance.now();
    const body = parseWith(ctx.schemas.chat, request.body);
    checkModelName(body.model, model.id);
    if (body.top_logprobs !== undefined && !body.logprobs) throw badRequest('top_logprobs requires logprobs: true', 'top_logprobs');
    const calibration = parseCalibration(body, ctx.calibrators, ctx.facts);
    const n = body.n ?? 1;
    const { stream, includeUsage } = streamSettings(body);

    const ticket = ctx.admission.admit(n, 1 + calibration.extraSlots);
    // A drain waits for this request from here, not only once it generates: fetching a remote image
    // comes first, and past the drain's deadline that fetch is stopped with a 503.
    const preparing = new AbortController();
    const untrack = ctx.lifecycle.trackPreparation(preparing);
    try {
      const gone = clientGoneSignal(reply.raw);
      let images;
      try {
        images = await loadChatImages(body.messages, {
          limits: config.limits,
          modelName: model.id,
          fetcher: imageFetcher,
          preparer: ctx.images?.preparer ?? null,
          signal: AbortSignal.any([gone.signal, preparing.signal]),
        });
      } catch (e) {
        if (preparing.signal.aborted) throw shutDownMidRequest(config.queue.retryAfterSeconds);
        throw e;
      } finally {
        gone.dispose();
      }
      const prompt = renderChatPrompt(body.messages, body.add_generation_prompt, {
        tokenizer: ctx.tokenizer,
        template: ctx.chatTemplate,
        maxPromptChars: model.maxPromptChars,
        images: ctx.images?.prompt ?? null,
      }, images.length);
      checkCalibrationPrompt(calibration, ctx.calibrators, { promptIds: prompt.ids, images: prompt.images }, ctx.facts);
      const [requested, param] = body.max_completion_tokens !== undefined ? [body.max_completion_tokens, 'max_completion_tokens'] : [body.max_tokens, 'max_tokens'];
      const maxTokens = resolveMaxTokens(prompt.ids.length, 'messages', requested, param, model);
      checkLogprobEntries(
        chatLogprobTerms(
          { choices: n, promptTokens: prompt.ids.length, maxTokens },
          { topLogprobs: body.logprobs ? (body.top_logprobs ?? 0) : null, promptLogprobs: body.prompt_logprobs, maxTokensParam: param },
        ),
        config.limits.maxLogprobEntries,
      );
      const sampling = buildSampling(body, { maxTokens, logprobs: body.logprobs ? (body.top_logprobs ?? 0) : null, promptLogprobs: body.prompt_logprobs }, model);
      const sequences = fanOut({ promptIds: prompt.ids, sampling, ...(images.length ? { images: { spans: prompt.images, inputs: images } } : {}) }, n);
      const responder = new ChatResponder({
        meta: { id: responseId('chatcmpl', body.request_id), created: Math.floor(Date.now() / 1000), model: model.id },
        choices: n,
        promptTokens: prompt.ids.length,
        streaming: stream,
        calibrationRequested: calibration.requested,
        calibrationOff: calibration.off,
        logprobs: body.logprobs,
        promptLogprobs: body.prompt_logprobs === null ? null : { topN: body.prompt_logprobs, promptIds: prompt.ids },
        tokensAsIds: body.return_tokens_as_token_ids ?? false,
        tokenText: ctx.tokenText,
        includeUsage: stream && includeUsage,
        returnTokenIds: body.return_token_ids ?? false,
        promptIds: prompt.ids,
      });
      return await execute(ctx, {
        request,
        reply,
        arrivedAt,
        ticket,
        sequences,
        calibration,
        responder,
        stream,
        includeUsage,
        choicesPerPrompt: n,
        promptForLog: body.messages,
      });
    } catch (e) {
      ticket.release();
      throw e;
    } finally {
      untrack();
    }
  });
};
