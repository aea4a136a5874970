// Runs cases of a malformed corpus through the CLI's command functions, as main.ts calls them, in one process:
// `node corpus-runner.js MANIFEST FIRST END RESULTS` writes the outcome of cases [FIRST, END) to RESULTS as JSON.
// A process of its own, so capturing its stdout and stderr cannot swallow the test runner's own output.
import { readFileSync, writeFileSync } from 'node:fs';
import type { CorpusCase } from '../../scripts/make-malformed-corpus.js';
import '../../src/index.js';
import { UsageError } from '../../src/cli/errors.js';
import { runGenerate } from '../../src/cli/generate.js';
import { runInspect } from '../../src/cli/inspect.js';
import { runMerge } from '../../src/cli/merge.js';
import { quantizeCommand } from '../../src/cli/quantize.js';
import { FormatError, HubError } from '../../src/io/errors.js';
import { ConfigError } from '../../src/models/config.js';
import { PeftError } from '../../src/peft/errors.js';
import { QuantError } from '../../src/quant/errors.js';
import { TokenizerError } from '../../src/tokenizer/errors.js';

export interface CaseOutcome {
  readonly id: string;
  readonly code: number;
  /** What the command wrote to stderr, then the line main.ts prints for an error it threw. */
  readonly stderr: string;
  /** The stack of an error that is not one of loraforge's user errors (a crash); null otherwise. */
  readonly crash: string | null;
}

const COMMANDS: Record<string, (argv: readonly string[]) => Promise<number>> = {
  inspect: runInspect,
  generate: runGenerate,
  merge: runMerge,
  quantize: (argv) => quantizeCommand([...argv]),
};

/** The errors loraforge raises for what a user gave it; anything else escaping a command is a crash. */
const USER_ERRORS = [FormatError, ConfigError, PeftError, QuantError, UsageError, HubError, TokenizerError];

async function run(c: CorpusCase): Promise<CaseOutcome> {
  const out = process.stdout.write;
  const err = process.stderr.write;
  let stderr = '';
  process.stdout.write = (() => true) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { id: c.id, code: await COMMANDS[c.argv[0]!]!(c.argv.slice(1)), stderr, crash: null };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const crash = USER_ERRORS.some((E) => e instanceof E) ? null : (e instanceof Error ? (e.stack ?? message) : message);
    return { id: c.id, code: e instanceof UsageError ? 2 : 1, stderr: `${stderr}loraforge: ${message}\n`, crash };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

const [manifest, first, end, results] = process.argv.slice(2);
const cases = (JSON.parse(readFileSync(manifest!, 'utf8')) as CorpusCase[]).slice(Number(first), Number(end));
const outcomes: CaseOutcome[] = [];
for (const c of cases) outcomes.push(await run(c));
writeFileSync(results!, JSON.stringify(outcomes));
