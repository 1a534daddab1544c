/**
 * The door of every generation route: 503 while not ready or draining, 429 while the queue is
 * full. It runs at onRequest, before the body is even read, so refusing a burst costs almost
 * nothing; the handler then reserves the exact number of sequences and tokens.
 */
import fp from 'fastify-plugin';
import type { Admission } from '../src/api/admission.js';

export interface AdmissionPluginOptions {
  admission: Admission;
}

export const admissionPlugin = fp<AdmissionPluginOptions>(
  async (app, { admission }) => {
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config?.generation === true) admission.gate();
    });
  },
  { name: 'attune-admission' },
);
