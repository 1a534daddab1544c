/**
 * `attune profile var`: VAR's model profile (sink dims and τ) from a folder of images, as
 * src/eval/var-profile.ts describes, written into a model profile.
 */
import { readdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { varCompiledLayers, type VarProfile } from '../../calibrators/var.js';
import { intFlag, numberFlag, UsageError } from '../eval/cli-flags.js';
import { table } from '../eval/format.js';
import { startHiddenProbe, type ProbePrompt } from '../eval/hidden-probe.js';
import { imagePromptContext, ImagePromptError, loadImage, renderImagePrompt } from '../eval/image-prompt.js';
import { prettyJson, writeProfileSection } from '../eval/profile-output.js';
import { loadEvalModel } from '../eval/session.js';
import { formatVarProfile, profileVar } from '../eval/var-profile.js';

const DEFAULT_PROMPT = 'Describe the image.';
const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);

export const HELP = `usage: attune profile var --model NAME|PATH --images DIR [--out PROFILE.json] [--prompt TEXT]
                          [--layer L] [--tau T] [--threads N]

  Runs one chat prompt per image in DIR through the model (the image, then the prompt, in the
  model's chat template), reads |x/RMS(x)| at the input of a middle layer, and prints the
  dimensions that stand out on visual tokens with their statistics on visual and other tokens.
  The dims before the sharpest drop are the sink dims; τ is suggested from the gap in φ (their
  largest |x/RMS(x)|) over layers 2..L-1. Writes var {sink_dims, tau, source} into PROFILE.json
  (merged into it when it exists, else into the model's current profile, so a chat template and
  other sections are kept); without --out, prints the section.

  --model    a LLaVA model name or path
  --images   a folder of PNG, JPEG or WebP images (a few photos of everyday scenes suit real models)
  --out      profile to write, e.g. attune-profile.json next to the weights
  --prompt   the text after each image (default "${DEFAULT_PROMPT}")
  --layer    the layer whose input is ranked (default: the middle one, L/2 rounded down)
  --tau      use this τ instead of the suggested one
  --threads  ORT threads (default 1)
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      images: { type: 'string' },
      out: { type: 'string' },
      prompt: { type: 'string', default: DEFAULT_PROMPT },
      layer: { type: 'string' },
      tau: { type: 'string' },
      threads: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    if (!values.model) throw new UsageError('--model is required');
    if (!values.images) throw new UsageError('--images is required');
    const threads = intFlag('threads', values.threads, 1);
    const givenTau = values.tau === undefined ? undefined : numberFlag('tau', values.tau, (n) => n > 0, '> 0');
    const dir = resolve(values.images);
    let files: string[];
    try {
      files = (await readdir(dir)).filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase())).sort();
    } catch (e) {
      throw new UsageError(`--images: cannot read ${dir}: ${(e as Error).message}`);
    }
    if (!files.length) throw new UsageError(`--images: ${dir} holds no PNG, JPEG or WebP files`);

    const model = await loadEvalModel(values.model);
    const { nLayers } = model.shape;
    const probeLayer = values.layer === undefined ? Math.floor(nLayers / 2) : intFlag('layer', values.layer, 0);
    if (probeLayer >= nLayers) throw new UsageError(`--layer: the model has layers 0-${nLayers - 1}`);
    const layers = varCompiledLayers(nLayers);
    if (!layers.length) throw new UsageError(`the model has ${nLayers} layers; VAR edits layers 2..L-1, so it has none`);
    const ctx = await imagePromptContext(model);
    const rendered = renderImagePrompt(ctx, values.prompt, 1);
    const prompts: ProbePrompt[] = [];
    for (const f of files) prompts.push({ ids: rendered.ids, spans: rendered.images, images: [await loadImage(ctx, f, dir, join(dir, f))] });

    const probe = await startHiddenProbe(model.resolved, model.tokenizer, [...new Set([probeLayer, ...layers])], threads);
    const report = await profileVar(probe, prompts, { probeLayer, layers, ...(givenTau === undefined ? {} : { tau: givenTau }) });
    process.stdout.write(`${formatVarProfile(report, table)}\n`);
    const tau = givenTau ?? report.tau?.value;
    if (!report.sinkDims.length || tau === undefined) {
      process.stdout.write('nothing written\n');
      return 1;
    }
    const section: VarProfile = {
      sink_dims: report.sinkDims,
      tau,
      source:
        `attune profile var on ${files.length} image(s) in ${basename(dir)} (prompt ${JSON.stringify(values.prompt)}); dims ranked at layer ${probeLayer}` +
        (report.dimGap ? `, ${report.dimGap.toFixed(2)}x the next dim` : '') +
        (givenTau === undefined && report.tau ? `; tau in the phi gap ${report.tau.below.toFixed(2)} to ${report.tau.above.toFixed(2)}` : `; tau given`) +
        `; ${new Date().toISOString().slice(0, 10)}`,
    };
    if (values.out) {
      await writeProfileSection(values.out, model.profile, 'var', section);
      process.stdout.write(`wrote var ${JSON.stringify({ sink_dims: section.sink_dims, tau: section.tau })} into ${values.out}\n`);
    } else process.stdout.write(`${prettyJson({ var: section })}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof ImagePromptError) {
      process.stderr.write(`attune profile var: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
