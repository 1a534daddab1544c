/**
 * What the HTTP layer needs of a model besides the engine: its tokenizer (the main thread encodes
 * and decodes), its profile (calibrator defaults), its chat template and, for an LVLM, how images
 * are written in prompts and preprocessed. Loaded once at startup.
 */
import type { ModelProfile } from '../../models/profiles/profile.js';
import { loadModelProfile } from '../../calibrators/index.js';
import type { ResolvedModel } from '../../models/resolve.js';
import { loadChatTemplateSource, loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import type { Tokenizer } from '../../models/tokenizers/tokenizer.js';
import { loadVisionPromptAssets, type VisionPromptAssets } from '../../models/vision-model.js';

export interface ModelAssets {
  tokenizer: Tokenizer;
  profile: ModelProfile;
  /** Jinja source: the tokenizer directory's, else the profile's (llama2.c models), else none. */
  chatTemplate: string | null;
  /** An LVLM's image placeholder and preprocessing; null for text-only models. */
  vision: VisionPromptAssets | null;
}

export async function loadModelAssets(model: ResolvedModel): Promise<ModelAssets> {
  const tokenizer = await loadTokenizer(model);
  const profile = loadModelProfile(model.name, model.dir);
  const chatTemplate = (await loadChatTemplateSource(model.dir)) ?? profile.chat_template ?? null;
  return { tokenizer, profile, chatTemplate, vision: await loadVisionPromptAssets(model) };
}
