import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';
import { GENERATE_HELP, runGenerate } from './generate.js';
import { INSPECT_HELP, runInspect } from './inspect.js';
import { MERGE_HELP, runMerge } from './merge.js';
import { QUANTIZE_HELP, quantizeCommand } from './quantize.js';
import { SERVE_HELP, serveCommand } from './serve.js';
import { TRAIN_HELP, runTrain } from './train.js';

/** `help` is printed for --help (or -h) anywhere among a command's arguments. */
const COMMANDS: Record<string, { run: (argv: readonly string[]) => Promise<number>; help: string }> = {
  train: { run: runTrain, help: TRAIN_HELP },
  generate: { run: runGenerate, help: GENERATE_HELP },
  merge: { run: runMerge, help: MERGE_HELP },
  inspect: { run: runInspect, help: INSPECT_HELP },
  quantize: { run: (argv) => quantizeCommand([...argv]), help: QUANTIZE_HELP },
  serve: { run: (argv) => serveCommand([...argv]), help: SERVE_HELP },
};

const USAGE = `usage: loraforge <command> [options]

commands:
  train     fine-tune a LoRA adapter (no options: the built-in example)
  generate  generate text with a model, optionally with an adapter
  merge     merge an adapter into its base model and write a Hugging Face checkpoint
  inspect   parameters, trainable share and memory estimate of a model or adapter folder
  quantize  write a 4-bit NF4 (bitsandbytes layout) copy of a model
  serve     OpenAI-compatible HTTP server over a base model and its adapters

loraforge <command> --help lists a command's options; loraforge --version prints the version. LORAFORGE_DEBUG=1 shows stack traces.`;

/** The version in the package's package.json (dist/src/cli/main.js and src/cli/main.ts are both three folders down). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** One sentence for the user; the stack trace only with LORAFORGE_DEBUG=1. */
function report(err: unknown): number {
  const debug = process.env['LORAFORGE_DEBUG'] === '1';
  const e = err instanceof Error ? err : new Error(String(err));
  if (debug) console.error(e.stack ?? e.message);
  else console.error(`loraforge: ${e.message.split('\n')[0]}`);
  return e instanceof UsageError ? 2 : 1;
}

async function dispatch(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(`loraforge ${version()}`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`Unknown command "${name}"; the commands are ${Object.keys(COMMANDS).join(', ')}.`);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return 0;
  }
  return command.run(rest);
}

/** Runs one loraforge command line; what a failure prints is one sentence on stderr, and the result is the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (err) {
    return report(err);
  }
}
