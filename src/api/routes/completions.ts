/**
 * POST /v1/completions. Order matters: cheap validation (shape, calibration, prompt structure), then
 * admission, and only then the heavy work (tokenizing), so a full server refuses a burst without
 * paying for it (the vLLM #58192 trap).
 */
import type { FastifyPluginAsync } from 'fastify';
import { checkCalibrationPrompt, parseCalibration } from '../calibration.js';
import type { RouteOptions } from '../context.js';
import { unsupported } from '../errors.js';
import { CompletionsResponder } from '../generation/completions-responder.js';
import { execute, fanOut, responseId, streamSettings } from '../generation/execute.js';
import { checkModelName } from '../model-name.js';
import { encodePrompts, refuseImageTokens, splitPrompts } from '../prompts.js';
import { checkLogprobEntries, completionsLogprobTerms } from '../response-size.js';
import { buildSampling, resolveMaxTokens } from '../sampling.js';
import { parseWith } from '../validation.js';

export const completionsRoute: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { model, config } = ctx;

  const schema = { summary: 'Text completions (OpenAI legacy, with vLLM\'s extra fields and calibration)', tags: ['generation'], body: ctx.schemas.completions };
  app.post('/v1/completions', { config: { generation: true }, schema }, async (request, reply) => {
    const arrivedAt = performance.now();
    const body = parseWith(ctx.schemas.completions, request.body);
    checkModelName(body.model, model.id);
    const n = body.n ?? 1;
    const { stream, includeUsage } = streamSettings(body);
    if (body.best_of !== undefined && body.best_of !== n) throw unsupported('best_of', 'best_of other than n is not supported');
    const calibration = parseCalibration(body, ctx.calibrators, ctx.facts);
    const raw = splitPrompts(body.prompt, config.limits.maxPrompts, model.maxModelLen);

    const ticket = ctx.admission.admit(raw.length * n, 1 + calibration.extraSlots);
    try {
      const prompts = encodePrompts(raw, ctx.tokenizer, { vocabSize: model.vocabSize, maxPromptChars: model.maxPromptChars, addBos: body.add_special_tokens });
      // Echo with logprobs and prompt_logprobs read the same engine pass: compute the larger top-N.
      const echoed = body.echo && body.logprobs !== null ? body.logprobs : null;
      const promptLogprobs = echoed === null ? body.prompt_logprobs : Math.max(echoed, body.prompt_logprobs ?? 0);
      if (ctx.images) refuseImageTokens(prompts, ctx.images.prompt.imageTokenId, raw);
      for (const p of prompts) checkCalibrationPrompt(calibration, ctx.calibrators, { promptIds: p.ids, images: [] }, ctx.facts);
      const perPrompt = prompts.map((p) => {
        const maxTokens = resolveMaxTokens(p.ids.length, p.param, body.max_tokens, 'max_tokens', model);
        return { prompt: p, seq: { promptIds: p.ids, sampling: buildSampling(body, { maxTokens, logprobs: body.logprobs, promptLogprobs }, model) } };
      });
      checkLogprobEntries(
        completionsLogprobTerms(
          perPrompt.map(({ prompt, seq }) => ({ choices: n, promptTokens: prompt.ids.length, maxTokens: seq.sampling.maxTokens })),
          { logprobs: body.logprobs, echo: body.echo, promptLogprobs: body.prompt_logprobs },
        ),
        config.limits.maxLogprobEntries,
      );
      const sequences = perPrompt.flatMap(({ seq }) => fanOut(seq, n));
      const responder = new CompletionsResponder({
        meta: { id: responseId('cmpl', body.request_id), created: Math.floor(Date.now() / 1000), model: model.id },
        choices: sequences.length,
        promptTokens: prompts.reduce((a, p) => a + p.ids.length, 0),
        streaming: stream,
        calibrationRequested: calibration.requested,
        calibrationOff: calibration.off,
        sources: perPrompt.flatMap(({ prompt }) => Array.from({ length: n }, () => ({ promptIds: prompt.ids, promptText: prompt.text }))),
        echo: body.echo,
        logprobs: body.logprobs,
        promptLogprobs: body.prompt_logprobs,
        tokensAsIds: body.return_tokens_as_token_ids ?? false,
        tokenText: ctx.tokenText,
        tokenizer: ctx.tokenizer,
        returnTokenIds: body.return_token_ids ?? false,
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
        promptForLog: body.prompt,
      });
    } catch (e) {
      ticket.release();
      throw e;
    }
  });
};
