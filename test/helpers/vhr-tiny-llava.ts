/** VHR's float64 reference on tiny-llava: O_T from the cut prompt, layer-by-layer selection, then the reinforced run. */
import type { VhrConfig } from '../../calibrators/vhr.js';
import type { RenderedPrompt } from '../../src/api/chat-prompt.js';
import { withoutImages } from '../../models/compiler/step-geometry.js';
import type { ImageInput } from '../../src/engine/types.js';
import { reinforceHooks, selectLayerByLayer, selectUnreinforced, textOnlyOutputs, type PromptRunner, type VhrSelection } from '../reference/vhr-reference.js';
import { referenceRun, type TinyLlava } from './tiny-llava.js';

export interface VhrReferenceRun {
  selection: VhrSelection;
  /** The rejected two-pass variant, for contrast. */
  unreinforced: VhrSelection;
  promptLogits: Float64Array[];
  /** One per token of `continuation`, each fed after the previous. */
  stepLogits: Float64Array[];
}

export function vhrReferenceRun(m: TinyLlava, prompt: RenderedPrompt, images: readonly ImageInput[], cfg: VhrConfig, continuation: readonly number[]): VhrReferenceRun {
  const text = textOnlyOutputs(m.weights, withoutImages(prompt.ids, prompt.images));
  const runner: PromptRunner = (hooks) => void referenceRun(m, prompt, images, [], hooks);
  const selection = selectLayerByLayer(runner, text, cfg);
  const { promptLogits, stepLogits } = referenceRun(m, prompt, images, continuation, reinforceHooks(selection.heads, cfg.alpha));
  return { selection, unreinforced: selectUnreinforced(runner, text, cfg), promptLogits, stepLogits };
}
