/**
 * `attune profile act|var`. `act`: the ACT head search on a calibration set, written into a model
 * profile (`var`: src/cli/profile-var.ts). By default the search covers the layers ACT is compiled
 * into (2..L-1, or the profile's); the engine compiles ACT into every searched layer (the profile
 * override), so heads in layers 0 and 1, which the official code never calibrates, can be tried
 * with --layers.
 */
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { ACT_DEFAULTS, actLayersFor } from '../../calibrators/act.js';
import { withActLayers } from '../eval/calibration-arg.js';
import { layersFlag, numberFlag, UsageError } from '../eval/cli-flags.js';
import { DatasetError, loadDataset } from '../eval/dataset.js';
import { formatDelta, formatSearch, formatValue } from '../eval/format.js';
import { searchHeads } from '../eval/head-search.js';
import { PrepareError, prepareTask } from '../eval/prepare.js';
import { actProfileSection, writeActProfile } from '../eval/profile-output.js';
import { loadEvalModel, startEvalEngine } from '../eval/session.js';

const HELP = `usage: attune profile act --data CALIB.jsonl --out PROFILE.json [--model NAME|PATH]
                          [--beta B] [--threshold T] [--margin M] [--layers 0-4] [--threads N]

  Calibrates one query head at a time on the calibration set, keeps each head that alone beats the
  uncalibrated metric by more than the margin, scores the union of kept heads, prints a per-head
  table, and writes act {heads, beta, threshold, layers, source} into PROFILE.json (merged into it
  when it exists, else into the model's current profile, so a chat template is kept). If the union
  does not beat the baseline, a greedy forward selection over the kept heads is written instead.

  --data       JSONL items: {"prompt", "choices", "answer"} (accuracy) or {"text"} (mean NLL per token)
  --out        profile to write, e.g. attune-profile.json next to the weights
  --model      model name or path (default stories260K)
  --beta       ACT beta (default ${ACT_DEFAULTS.beta})
  --threshold  ACT threshold (default ${ACT_DEFAULTS.threshold})
  --margin     a head is kept when its gain is more than this: items for accuracy (default 0, i.e.
               at least one more item right), nats per token for NLL (default 0.001)
  --layers     layers to search, e.g. 0-4 or 2,3 (default: the layers ACT is compiled into: the
               profile's act.layers, else 2 to the last, which the official code calibrates)
  --threads    ORT threads in the engine worker (default 1)
`;

export async function run(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === '--help' || what === '-h') {
    process.stdout.write(`${HELP}\n${(await import('./profile-var.js')).HELP}`);
    return 0;
  }
  if (what === 'var') return (await import('./profile-var.js')).run(rest);
  if (what !== 'act') {
    process.stderr.write(`attune profile: ${what ? `unknown profile kind '${what}'` : 'missing profile kind'}; 'act' and 'var' exist\n\n${HELP}`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string', default: 'stories260K' },
      data: { type: 'string' },
      out: { type: 'string' },
      beta: { type: 'string', default: String(ACT_DEFAULTS.beta) },
      threshold: { type: 'string', default: String(ACT_DEFAULTS.threshold) },
      margin: { type: 'string' },
      layers: { type: 'string' },
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
    if (!values.data) throw new UsageError('--data is required');
    if (!values.out) throw new UsageError('--out is required');
    const beta = numberFlag('beta', values.beta, (n) => n >= 0 && n <= 1, 'in [0, 1]');
    const threshold = numberFlag('threshold', values.threshold, (n) => n > 0 && n <= 1, 'in (0, 1]');
    const threads = numberFlag('threads', values.threads, (n) => Number.isInteger(n) && n >= 1, '≥ 1 (an integer)');
    const data = await loadDataset(values.data);
    const margin = values.margin === undefined ? (data.kind === 'mc' ? 0 : 0.001) : numberFlag('margin', values.margin, (n) => n >= 0, '≥ 0');

    const model = await loadEvalModel(values.model);
    const { nLayers } = model.shape;
    // By default the layers ACT itself is compiled into (2..L-1, or the profile's), so that the search
    // writes a profile for the calibrator as it runs; --layers widens or narrows the search.
    const layers = values.layers === undefined ? actLayersFor(model.profile, nLayers) : layersFlag(values.layers, nLayers);
    const task = prepareTask(data, model.tokenizer);
    const engine = await startEvalEngine(model, withActLayers(model.profile, nLayers, layers), { threads });
    const started = performance.now();
    let lastPrinted = 0;
    try {
      const r = await searchHeads(engine.client, engine.facts, task, {
        layers,
        beta,
        threshold,
        margin,
        score: {
          onProgress: (done, total) => {
            const now = performance.now();
            if (process.stderr.isTTY && (now - lastPrinted > 500 || done === total)) {
              lastPrinted = now;
              process.stderr.write(`\rscoring ${done}/${total}`);
              if (done === total) process.stderr.write('\n');
            }
          },
        },
      });
      const seconds = (performance.now() - started) / 1000;
      const m = r.metric;
      const source =
        `attune profile act on ${basename(values.data)} (${r.items} items, ${m.name}); searched layers ${layers.join(',')}, ` +
        `beta ${beta}, threshold ${threshold}, margin ${margin}; baseline ${formatValue(m, r.baseline)}, ` +
        `${r.chosen.rule} set ${formatValue(m, r.chosen.metric)} (${formatDelta(m, r.chosen.delta)}); ${new Date().toISOString().slice(0, 10)}`;
      const section = actProfileSection({ heads: r.chosen.heads, beta, threshold, nLayers, source });
      await writeActProfile(values.out, model.profile, section);
      process.stdout.write(`${formatSearch(r)}\n\nsearched ${r.effects.length} heads on ${r.items} items (${r.passes} passes) in ${seconds.toFixed(1)} s\nwrote ${values.out}\n`);
      return 0;
    } finally {
      await engine.client.close();
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof DatasetError || e instanceof PrepareError) {
      process.stderr.write(`attune profile: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
