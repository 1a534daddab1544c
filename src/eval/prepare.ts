/**
 * Dataset items → token sequences whose tail is scored. An MC choice is scored inside the
 * tokenization of `prompt + choice`, so the choice's tokens are the ones the model would really see
 * after that prompt; this is only sound when the prompt's own tokens are a prefix of it, which
 * holds for llama2.c's BPE (its dummy-prefix space goes only at the very start, and no piece spans
 * a word boundary) but is checked per choice rather than assumed.
 */
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import type { RequestImages } from '../engine/types.js';
import { hasImages, type Dataset } from './dataset.js';

/** Score the logprobs of `ids[start..]`, each given everything before it (and the images, if any). */
export interface ScoredSpan {
  ids: number[];
  start: number;
  images?: RequestImages;
}

export interface PreparedMcItem {
  choices: ScoredSpan[];
  answer: number;
}

export type PreparedTask =
  | {
      kind: 'mc';
      items: PreparedMcItem[];
      /** Choices whose joint tokenization moved the prompt boundary, encoded on their own instead. */
      boundaryFallbacks: number;
    }
  | { kind: 'nll'; items: ScoredSpan[] };

export class PrepareError extends Error {}

export function prepareTask(data: Dataset, tokenizer: Tokenizer): PreparedTask {
  if (hasImages(data)) throw new PrepareError('these items have images, which this command does not score (attune eval does, on a vision-language model)');
  if (data.kind === 'nll') {
    return {
      kind: 'nll',
      items: data.items.map((item, i) => {
        const ids = tokenizer.encode(item.text, { addBos: true });
        // The first token has no context to be predicted from, BOS or not.
        if (ids.length < 2) throw new PrepareError(`item ${i + 1}: text encodes to fewer than 2 tokens, nothing to score`);
        return { ids, start: 1 };
      }),
    };
  }
  let boundaryFallbacks = 0;
  const items = data.items.map((item, i) => {
    const promptIds = tokenizer.encode(item.prompt, { addBos: true });
    const choices = item.choices.map((choice, c) => {
      const joint = tokenizer.encode(item.prompt + choice, { addBos: true });
      if (joint.length > promptIds.length && promptIds.every((id, k) => joint[k] === id)) return { ids: joint, start: promptIds.length };
      boundaryFallbacks++;
      const tail = continuationIds(tokenizer, choice);
      if (!tail) throw new PrepareError(`item ${i + 1}, choice ${c}: ${JSON.stringify(choice)} cannot be tokenized as a continuation of its prompt`);
      return { ids: [...promptIds, ...tail], start: promptIds.length };
    });
    return { choices, answer: item.answer };
  });
  return { kind: 'mc', items, boundaryFallbacks };
}

/**
 * The choice's own tokens with no BOS. Tokenizers that add a dummy-prefix space (llama2.c,
 * SentencePiece) put one extra token in front, so that token is dropped when the text then decodes
 * back exactly; null when neither reading reproduces the text.
 */
export function continuationIds(tokenizer: Tokenizer, text: string): number[] | null {
  const ids = tokenizer.encode(text, { addBos: false });
  if (tokenizer.decode(ids) === text) return ids;
  const rest = ids.slice(1);
  return rest.length > 0 && tokenizer.decode(rest) === text ? rest : null;
}

/** Every span the task needs scored: items in order, and within an MC item its choices in order. */
export function taskSpans(task: PreparedTask): ScoredSpan[] {
  return task.kind === 'nll' ? task.items : task.items.flatMap((item) => item.choices);
}
