/** The `model` field: optional, but when given it must name the served model (vLLM answers 404 too). */
import { ApiError } from './errors.js';

export function checkModelName(requested: string | null | undefined, served: string): void {
  if (requested === undefined || requested === null || requested === served) return;
  throw new ApiError(404, `the model '${requested}' does not exist; this server serves '${served}'`, {
    type: 'not_found_error',
    param: 'model',
    code: 'model_not_found',
  });
}
