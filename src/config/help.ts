/** `attune serve --help`, rendered from the option table and the schema's defaults. */
import { CONFIG_FILE_OPTION, OPTIONS, type OptionSpec } from './options.js';
import { ServerConfigSchema } from './schema.js';

function defaultOf(o: OptionSpec, defaults: Record<string, unknown>): string {
  let v: unknown = defaults;
  for (const key of o.path) v = (v as Record<string, unknown> | undefined)?.[key];
  if (o.kind === 'bool') return '';
  if (v === undefined) return '';
  if (Array.isArray(v)) return v.length ? ` (default ${v.join(',')})` : '';
  return ` (default ${String(v)})`;
}

export function serveHelp(): string {
  const defaults = ServerConfigSchema.parse({}) as unknown as Record<string, unknown>;
  const row = (flag: string, env: string, meta: string | undefined, help: string) =>
    `  --${flag}${meta ? ` ${meta}` : ''}\n      ${env}\n      ${help}`;
  const lines = [
    row(CONFIG_FILE_OPTION.flag, CONFIG_FILE_OPTION.env, CONFIG_FILE_OPTION.meta, CONFIG_FILE_OPTION.help),
    ...OPTIONS.map((o) => row(o.flag, o.env, o.meta, o.help + defaultOf(o, defaults))),
  ];
  return (
    'usage: attune serve [flags]\n\n' +
    'Serves one model over an OpenAI-compatible HTTP API. Each flag has an environment variable\n' +
    '(shown under it); flags beat env vars, which beat the --config file.\n\n' +
    `${lines.join('\n')}\n  -h, --help\n      this text\n\n` +
    'SIGTERM or SIGINT drains: new requests get 503, in-flight ones finish (up to --drain-timeout), then exit 0.\n'
  );
}
