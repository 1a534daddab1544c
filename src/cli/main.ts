#!/usr/bin/env node
/** `attune <command>`: each command lives in its own module and parses its own flags. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  serve: { summary: 'serve a model over an OpenAI-compatible HTTP API', load: () => import('./serve.js') },
  generate: { summary: 'generate text from a prompt and print it', load: () => import('./generate.js') },
  eval: { summary: 'score a task without and with a calibration, with a paired bootstrap CI', load: () => import('./eval.js') },
  fetch: { summary: 'download a model and verify its files (sha256), e.g. in an init container', load: () => import('./fetch.js') },
  profile: { summary: 'find a calibrator\'s model profile (ACT heads, VAR sink dims) and write it', load: () => import('./profile.js') },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: attune <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun 'attune <command> --help' for its flags.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`attune: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return (await cmd.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`attune: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
