/**
 * `attune eval`: a task's metric without and with one calibration, side by side, with a paired
 * bootstrap CI of the difference. The calibration is the API's `calibration` object.
 */
import { parseArgs } from 'node:util';
import { actLayersNamed, CalibrationArgError, checkTaskPrompts, parseCalibrationArg, resolveCalibration, withActLayers } from '../eval/calibration-arg.js';
import { compareCalibration } from '../eval/compare.js';
import { DatasetError, hasImages, loadDataset } from '../eval/dataset.js';
import { formatComparison } from '../eval/format.js';
import { prepareImageTask } from '../eval/image-items.js';
import { imagePromptContext, ImagePromptError } from '../eval/image-prompt.js';
import { PrepareError, prepareTask, taskSpans } from '../eval/prepare.js';
import { loadEvalModel, startEvalEngine } from '../eval/session.js';
import { intFlag, UsageError } from '../eval/cli-flags.js';

const HELP = `usage: attune eval --data ITEMS.jsonl --calibration JSON [--model NAME|PATH] [--seed S] [--bootstrap N] [--threads T] [--json]

  --data         JSONL items: {"prompt", "choices", "answer"} (accuracy) or {"text"} (mean NLL per token);
                 for a vision-language model, {"image", "prompt", "choices", "answer"} (accuracy), the
                 image a path relative to the file or a data: URL, the prompt a chat turn after the
                 image, each choice scored as the assistant's reply
  --calibration  the API's calibration object, e.g. '{"act":{"heads":{"2":[0,1]}}}', '{"act":true}', '{"var":true}'
  --model        model name or path (default stories260K)
  --seed         bootstrap seed (default 0)
  --bootstrap    bootstrap resamples (default 10000)
  --threads      ORT threads in the engine worker (default 1)
  --json         print the result as JSON instead of a table
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', default: 'stories260K' },
      data: { type: 'string' },
      calibration: { type: 'string' },
      seed: { type: 'string', default: '0' },
      bootstrap: { type: 'string', default: '10000' },
      threads: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    if (!values.data) throw new UsageError('--data is required');
    if (values.calibration === undefined) throw new UsageError('--calibration is required');
    const seed = intFlag('seed', values.seed, 0);
    const resamples = intFlag('bootstrap', values.bootstrap, 1);
    const threads = intFlag('threads', values.threads, 1);
    const request = parseCalibrationArg(values.calibration);
    const data = await loadDataset(values.data);

    const model = await loadEvalModel(values.model);
    const task = data.kind === 'mc' && hasImages(data)
      ? await prepareImageTask(data, values.data, await imagePromptContext(model))
      : prepareTask(data, model.tokenizer);
    const profile = withActLayers(model.profile, model.shape.nLayers, actLayersNamed(request));
    const engine = await startEvalEngine(model, profile, { threads });
    try {
      const calibration = resolveCalibration(request, engine.facts);
      checkTaskPrompts(calibration, taskSpans(task), engine.facts);
      const started = performance.now();
      const c = await compareCalibration(engine.client, task, calibration, { bootstrap: { seed, resamples } });
      const seconds = (performance.now() - started) / 1000;
      if (values.json) {
        const { perItem: _perItem, ...summary } = c;
        process.stdout.write(`${JSON.stringify({ model: model.resolved.name, data: values.data, calibration: JSON.parse(values.calibration), ...summary, seconds })}\n`);
      } else {
        process.stdout.write(`model ${model.resolved.name}, data ${values.data}, calibration ${values.calibration}\n`);
        if (task.kind === 'mc' && task.boundaryFallbacks) process.stdout.write(`note: ${task.boundaryFallbacks} choices were tokenized apart from their prompt (see src/eval/prepare.ts)\n`);
        process.stdout.write(`${formatComparison(c)}\nscored ${c.items} items twice in ${seconds.toFixed(1)} s\n`);
      }
      return 0;
    } finally {
      await engine.client.close();
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof CalibrationArgError || e instanceof DatasetError || e instanceof PrepareError || e instanceof ImagePromptError) {
      process.stderr.write(`attune eval: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
