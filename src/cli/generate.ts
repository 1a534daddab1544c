/** `attune generate`: one prompt through the real engine worker, text to stdout as it streams. */
import { parseArgs } from 'node:util';
import { resolveModel } from '../../models/resolve.js';
import { loadTokenizer } from '../../models/tokenizers/load-tokenizer.js';
import { EngineClient } from '../engine/engine-client.js';
import { GREEDY_DEFAULTS } from '../engine/sampling/defaults.js';

const HELP = `usage: attune generate [--model NAME|PATH] [--prompt TEXT] [--max-tokens N] [--temperature T]
                       [--top-p P] [--seed S]

  --model        model name (looked up in ATTUNE_MODELS_DIR, then the cache) or path (default stories260K)
  --prompt       prompt text; empty means generation starts from BOS alone (default "")
  --max-tokens   tokens to generate (default: the rest of the context)
  --temperature  0 is greedy (default 0)
  --top-p        nucleus sampling (default 1)
  --seed         PRNG seed for sampling
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', default: 'stories260K' },
      prompt: { type: 'string', default: '' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string', default: '0' },
      'top-p': { type: 'string', default: '1' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = (flag: string, v: string | undefined, integer: boolean): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new Error(`--${flag} must be ${integer ? 'an integer' : 'a number'}, got '${v}'`);
    return n;
  };
  const model = await resolveModel(values.model);
  const tokenizer = await loadTokenizer(model);
  const promptIds = tokenizer.encode(values.prompt, { addBos: true });
  const client = await EngineClient.start({ model });
  try {
    const maxTokens = num('max-tokens', values['max-tokens'], true) ?? client.info.maxModelLen - promptIds.length;
    const stream = client.generate({
      id: 'cli',
      promptIds,
      sampling: {
        ...GREEDY_DEFAULTS,
        maxTokens,
        temperature: num('temperature', values.temperature, false)!,
        topP: num('top-p', values['top-p'], false)!,
        seed: num('seed', values.seed, true),
      },
      calibration: {},
    });
    process.stdout.write(values.prompt);
    for await (const e of stream) {
      if (e.type === 'tokens') process.stdout.write(e.text);
      else if (e.type === 'error') throw new Error(e.message);
    }
    process.stdout.write('\n');
    return 0;
  } finally {
    await client.close();
  }
}
