/**
 * Image items (`{image, prompt, choices, answer}`) → scored spans for a vision-language model. Each
 * item is one chat turn (the image, then the prompt) in the model's template with its generation
 * prompt; a choice is scored as the assistant's reply, inside the tokenization of the turn followed
 * by the choice (as prepare.ts scores text choices), so its tokens are those the model would see.
 */
import { dirname } from 'node:path';
import type { ImageInput } from '../engine/types.js';
import type { Dataset } from './dataset.js';
import { loadImage, renderImagePrompt, type ImagePromptContext } from './image-prompt.js';
import { continuationIds, PrepareError, type PreparedTask, type ScoredSpan } from './prepare.js';

export async function prepareImageTask(data: Extract<Dataset, { kind: 'mc' }>, source: string, ctx: ImagePromptContext): Promise<PreparedTask> {
  const baseDir = dirname(source);
  // Items often share images: each is decoded once.
  const images = new Map<string, Promise<ImageInput>>();
  let boundaryFallbacks = 0;
  const items = [];
  for (const [i, item] of data.items.entries()) {
    const ref = item.image!;
    let image = images.get(ref);
    if (!image) images.set(ref, (image = loadImage(ctx, ref, baseDir, `${source}: item ${i + 1}: image`)));
    const inputs = [await image];
    const prompt = renderImagePrompt(ctx, item.prompt, 1);
    const choices = item.choices.map((choice, c): ScoredSpan => {
      const joint = renderImagePrompt(ctx, item.prompt, 1, choice);
      if (joint.ids.length > prompt.ids.length && prompt.ids.every((id, k) => joint.ids[k] === id)) {
        return { ids: joint.ids, start: prompt.ids.length, images: { spans: joint.images, inputs } };
      }
      boundaryFallbacks++;
      const tail = continuationIds(ctx.model.tokenizer, choice);
      if (!tail) throw new PrepareError(`item ${i + 1}, choice ${c}: ${JSON.stringify(choice)} cannot be tokenized as a reply to its prompt`);
      return { ids: [...prompt.ids, ...tail], start: prompt.ids.length, images: { spans: prompt.images, inputs } };
    });
    items.push({ choices, answer: item.answer });
  }
  return { kind: 'mc', items, boundaryFallbacks };
}
