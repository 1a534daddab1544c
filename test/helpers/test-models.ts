/**
 * A seeded random model of the 110M shape and its weight stores, kept between runs under
 * $TMPDIR/attune-test-models (about 3 GB with every format's store): building them takes longer
 * than the tests that use them, and both are keyed by content, so a kept copy is always valid.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedRandomModel, SCALE_SHAPES } from '../../load-tests/random-llama2c.js';
import { loadLlama2cTokenizer } from '../../models/tokenizers/llama2c-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';

export const TEST_MODELS_DIR = join(tmpdir(), 'attune-test-models');
/** The compiled cache the tests share (weight stores and graphs). */
export const TEST_COMPILED_CACHE = join(TEST_MODELS_DIR, 'compiled');

export async function random110M(): Promise<{ path: string; tokenizer: Tokenizer }> {
  const dir = await cachedRandomModel(TEST_MODELS_DIR, 'scale-110M', SCALE_SHAPES['110M']);
  return { path: join(dir, 'model.bin'), tokenizer: await loadLlama2cTokenizer(join(dir, 'tok32000.bin'), 32000) };
}
