/**
 * Builds the server configuration from its three sources, flags over environment over JSON file,
 * and validates the result once. Every problem is reported with the source that supplied the bad
 * value, because "port: too big" is much less useful than "port (from PORT): too big".
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readApiKeyFile } from './api-keys.js';
import { CONFIG_FILE_OPTION, OPTIONS, type OptionSpec } from './options.js';
import { ServerConfigSchema, type ServerConfig } from './schema.js';
import { readTlsFiles, TlsConfigError } from './tls.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface ConfigSources {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
}

export type LoadedConfig = { help: true } | { help: false; config: ServerConfig };

type Layer = { values: Record<string, unknown>; sources: Map<string, string> };

export function loadServerConfig({ argv, env }: ConfigSources): LoadedConfig {
  const flags = parseFlags(argv);
  if (flags.help === true) return { help: true };

  const layers: Layer[] = [];
  const file = stringValue(flags[CONFIG_FILE_OPTION.flag]) ?? nonEmpty(env[CONFIG_FILE_OPTION.env]);
  if (file) layers.push(fileLayer(file));
  layers.push(envLayer(env), flagLayer(flags));

  const merged: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  const apiKeys: string[] = [];
  for (const layer of layers) {
    for (const [key, source] of layer.sources) sources.set(key, source);
    const keys = layer.values.apiKeys;
    deepMerge(merged, layer.values);
    // Keys from every source count: an operator adding a key by flag does not mean to revoke the env's.
    if (Array.isArray(keys)) apiKeys.push(...(keys as string[]));
  }
  if (apiKeys.length) merged.apiKeys = apiKeys;
  if (typeof merged.apiKeyFile === 'string') {
    try {
      merged.apiKeys = [...apiKeys, ...readApiKeyFile(merged.apiKeyFile)];
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }

  const parsed = ServerConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = issue.path.map(String).join('.');
      const source = sources.get(key) ?? sources.get(issue.path.slice(0, 1).map(String).join('.'));
      return `  - ${key || '(root)'}${source ? ` (from ${source})` : ''}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  try {
    readTlsFiles(parsed.data.tls);
  } catch (e) {
    if (e instanceof TlsConfigError) throw new ConfigError(e.message);
    throw e;
  }
  return { help: false, config: parsed.data };
}

function parseFlags(argv: readonly string[]): Record<string, string | boolean | (string | boolean)[] | undefined> {
  const options: NonNullable<ParseArgsConfig['options']> = {
    help: { type: 'boolean', short: 'h' },
    [CONFIG_FILE_OPTION.flag]: { type: 'string' },
  };
  for (const o of OPTIONS) options[o.flag] = o.kind === 'bool' ? { type: 'boolean' } : { type: 'string', multiple: o.kind === 'list' };
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\nRun 'attune serve --help' for the flags.`);
  }
}

function fileLayer(path: string): Layer {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`config file ${path}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`config file ${path}: expected a JSON object`);
  const sources = new Map<string, string>();
  const walk = (v: unknown, prefix: string[]) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, [...prefix, k]);
    } else sources.set(prefix.join('.'), `config file ${path}`);
  };
  walk(raw, []);
  return { values: raw as Record<string, unknown>, sources };
}

function envLayer(env: Readonly<Record<string, string | undefined>>): Layer {
  const layer: Layer = { values: {}, sources: new Map() };
  for (const o of OPTIONS) {
    const text = nonEmpty(env[o.env]);
    if (text === undefined) continue;
    setPath(layer, o, fromText(o, text, o.env), o.env);
  }
  return layer;
}

function flagLayer(flags: Record<string, unknown>): Layer {
  const layer: Layer = { values: {}, sources: new Map() };
  for (const o of OPTIONS) {
    const v = flags[o.flag];
    if (v === undefined) continue;
    const source = `--${o.flag}`;
    if (o.kind === 'bool') setPath(layer, o, o.sets ?? true, source);
    else if (o.kind === 'list') setPath(layer, o, (v as string[]).flatMap(splitList), source);
    else setPath(layer, o, fromText(o, v as string, source), source);
  }
  return layer;
}

function fromText(o: OptionSpec, text: string, source: string): unknown {
  switch (o.kind) {
    case 'string':
      return text;
    case 'list':
      return splitList(text);
    case 'int':
    case 'number': {
      const n = Number(text.trim());
      if (text.trim() === '' || !Number.isFinite(n) || (o.kind === 'int' && !Number.isInteger(n))) {
        throw new ConfigError(`invalid configuration:\n  - ${o.path.join('.')} (from ${source}): expected ${o.kind === 'int' ? 'an integer' : 'a number'}, got '${text}'`);
      }
      return n;
    }
    case 'bool': {
      const t = text.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(t)) return o.sets ?? true;
      if (['0', 'false', 'no', 'off'].includes(t)) return !(o.sets ?? true);
      throw new ConfigError(`invalid configuration:\n  - ${o.path.join('.')} (from ${source}): expected true or false, got '${text}'`);
    }
  }
}

function splitList(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function setPath(layer: Layer, o: OptionSpec, value: unknown, source: string): void {
  let target = layer.values;
  for (const key of o.path.slice(0, -1)) {
    const next = target[key];
    if (typeof next !== 'object' || next === null) target[key] = {};
    target = target[key] as Record<string, unknown>;
  }
  target[o.path[o.path.length - 1]!] = value;
  layer.sources.set(o.path.join('.'), source);
}

function deepMerge(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(from)) {
    const cur = into[k];
    if (isPlainObject(v) && isPlainObject(cur)) deepMerge(cur, v);
    else into[k] = isPlainObject(v) ? structuredClone(v) : v;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

function stringValue(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
