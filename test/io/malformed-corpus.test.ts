// Every case of scripts/make-malformed-corpus.ts through the CLI's command functions (in this process, as main.ts
// calls them: one spawn costs about a second on a loaded 2-core machine), and a few through real spawns of the
// built CLI: each malformed input exits non-zero with one line naming the file, and leaves no file behind.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { makeMalformedCorpus, type CorpusCase } from '../../scripts/make-malformed-corpus.js';
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
import { cli } from '../cli/helpers.js';

const root = await mkdtemp(join(tmpdir(), 'loraforge-corpus-'));
after(() => rm(root, { recursive: true, force: true }));
const cases = await makeMalformedCorpus(root);

const COMMANDS: Record<string, (argv: readonly string[]) => Promise<number>> = {
  inspect: runInspect,
  generate: runGenerate,
  merge: runMerge,
  quantize: (argv) => quantizeCommand([...argv]),
};

/** The errors loraforge raises for what a user gave it; anything else escaping a command is a crash. */
const USER_ERRORS = [FormatError, ConfigError, PeftError, QuantError, UsageError, HubError, TokenizerError];

interface Outcome {
  code: number;
  /** What the command wrote to stderr, then the line main.ts would print for an error it threw. */
  stderr: string;
  thrown: unknown;
}

/** Runs `loraforge <argv>` in this process, with stdout and stderr captured. */
async function runInProcess(argv: readonly string[]): Promise<Outcome> {
  const out = process.stdout.write;
  const err = process.stderr.write;
  let stderr = '';
  process.stdout.write = (() => true) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await COMMANDS[argv[0]!]!(argv.slice(1)), stderr, thrown: null };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { code: e instanceof UsageError ? 2 : 1, stderr: `${stderr}loraforge: ${message}\n`, thrown: e };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

function assertRefusal(c: CorpusCase, code: number | null, stderr: string): void {
  assert.notEqual(code, 0, `${c.id} exited 0`);
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${c.id} wrote more than one line:\n${stderr}`);
  assert.match(lines[0]!, /^loraforge( quantize)?: /);
  assert.doesNotMatch(stderr, /\n\s+at /);
  assert.ok(lines[0]!.includes(c.names!), `${c.id}: the error does not name ${c.names}:\n${lines[0]}`);
  for (const path of c.outputs) assert.equal(existsSync(path), false, `${c.id} left ${path}`);
}

test('the corpus holds at least 120 malformed cases, over every command, and valid inputs', () => {
  const malformed = cases.filter((c) => !c.valid);
  assert.ok(malformed.length >= 120, `${malformed.length} malformed cases`);
  assert.deepEqual([...new Set(malformed.map((c) => c.argv[0]))].sort(), ['generate', 'inspect', 'merge', 'quantize']);
  assert.ok(cases.some((c) => c.valid));
});

for (const c of cases.filter((k) => !k.valid)) {
  test(`${c.id}: ${c.what} is refused in one line naming the file, leaving nothing`, async () => {
    const caseDir = join(root, c.id);
    const before = await filesUnder(caseDir);
    const r = await runInProcess(c.argv);
    if (r.thrown !== null) assert.ok(USER_ERRORS.some((E) => r.thrown instanceof E), `${c.id} crashed: ${(r.thrown as Error).stack}`);
    assertRefusal(c, r.code, r.stderr);
    assert.deepEqual(await filesUnder(caseDir), before);
  });
}

for (const c of cases.filter((k) => k.valid)) {
  test(`${c.id}: ${c.what} is accepted`, async () => {
    const r = await runInProcess(c.argv);
    assert.equal(r.thrown, null, r.stderr);
    assert.equal(r.code, 0, r.stderr);
  });
}

// The built CLI itself, on the first malformed case of each command and on one valid input.
const spawned = ['inspect', 'generate', 'merge', 'quantize'].map((command) => cases.find((c) => !c.valid && c.argv[0] === command)!);
for (const c of spawned) {
  test(`${c.id} through node dist/src/cli/main.js: ${c.what} exits non-zero with one line`, () => {
    const r = cli(c.argv);
    assertRefusal(c, r.code, r.stderr);
  });
}

test('a valid input through node dist/src/cli/main.js exits 0', () => {
  const c = cases.find((k) => k.valid && k.argv[0] === 'generate')!;
  const r = cli(c.argv);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
});
