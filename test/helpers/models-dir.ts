import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root, whether running from source or from dist/. */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

/** Where the shared test models live: ATTUNE_MODELS_DIR, else ../shared/models beside the checkout. */
export const modelsDir = resolve(process.env.ATTUNE_MODELS_DIR ?? join(repoRoot, '..', 'shared', 'models'));

// Tests that need the shared models fail loudly without them: a green run must never be one that
// quietly skipped the golden, parity and calibrator suites.
if (!existsSync(join(modelsDir, 'stories260K', 'stories260K.bin'))) {
  throw new Error(`the shared test models are not at ${modelsDir}: set ATTUNE_MODELS_DIR to the directory holding stories260K/ and aidreams260K/`);
}

export const stories260K = {
  checkpoint: join(modelsDir, 'stories260K', 'stories260K.bin'),
  tokenizer: join(modelsDir, 'stories260K', 'tok512.bin'),
};
export const aidreams260K = {
  checkpoint: join(modelsDir, 'aidreams260K', 'aidreams260K.bin'),
  tokenizer: join(modelsDir, 'aidreams260K', 'tok512.bin'),
};

/** The documented greedy output of stories260K from BOS (../shared/models/README.md): its start. */
export const STORIES_GOLDEN_PREFIX =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n' +
  'Lily\'s mom said, "Lily, let\'s go to the park." Lily was sad and didn\'t know what to do. She said, "I want to play with your ball, but I can\'t find it."';
