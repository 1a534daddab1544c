/** GET /v1/models and GET /v1/calibrators: what this server serves and which calibrators it takes. */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AnyCalibrator } from '../../../calibrators/calibrator.js';
import type { RouteOptions } from '../context.js';

/** The JSON Schema of a calibrator's config object, as clients send it (input side of the zod schema). */
export function calibratorConfigSchema(c: AnyCalibrator): Record<string, unknown> {
  return z.toJSONSchema(c.schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

export const infoRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { model } = ctx;
  const models = {
    object: 'list',
    data: [
      {
        id: model.id,
        object: 'model',
        created: model.created,
        owned_by: 'attune',
        root: model.id,
        parent: null,
        max_model_len: model.maxModelLen,
        /** Whether chat messages may carry image parts (an LVLM with a vision tower). */
        capabilities: { vision: ctx.images !== null },
        permission: [],
      },
    ],
  };
  // Schemas are fixed for the life of the process: render them once.
  const calibrators = {
    object: 'list',
    data: [...ctx.calibrators.values()].map((c) => ({
      id: c.id,
      object: 'calibrator',
      summary: c.summary,
      /** What `calibration.<id>` accepts besides true and false. */
      config_schema: calibratorConfigSchema(c),
    })),
  };

  app.get('/v1/models', { schema: { summary: 'The served model (OpenAI)', tags: ['models'] } }, async () => models);
  app.get('/v1/calibrators', { schema: { summary: 'Calibrators and the JSON Schema of their per-request config', tags: ['models'] } }, async () => calibrators);
  // vLLM's; like vLLM, open without a key (it names nothing a client could not learn by asking).
  app.get('/version', { config: { public: true }, schema: { summary: 'The server version (vLLM)', tags: ['operations'] } }, async () => ({ version: ctx.version }));
};
