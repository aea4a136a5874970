// Every case of scripts/make-malformed-corpus.ts through the CLI's command functions (in two corpus-runner.js
// processes, many cases each: one CLI spawn costs about a second on a loaded 2-core machine), and a few through
// real spawns of the built CLI: each malformed input exits non-zero with one line naming the file, leaving no file.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeMalformedCorpus, type CorpusCase } from '../../scripts/make-malformed-corpus.js';
import { cli } from '../cli/helpers.js';
import type { CaseOutcome } from './corpus-runner.js';

const RUNNER = fileURLToPath(new URL('./corpus-runner.js', import.meta.url));
/** One runner process per core of the 2-core machine the suite is sized for. */
const RUNNERS = 2;

const root = await mkdtemp(join(tmpdir(), 'loraforge-corpus-'));
after(() => rm(root, { recursive: true, force: true }));
const cases = await makeMalformedCorpus(root);

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

const before = new Map(await Promise.all(cases.map(async (c) => [c.id, await filesUnder(join(root, c.id))] as const)));

/** Every case through corpus-runner.js, the corpus split into RUNNERS consecutive slices run side by side. */
async function runAll(): Promise<Map<string, CaseOutcome>> {
  const manifest = join(root, 'manifest.json');
  const size = Math.ceil(cases.length / RUNNERS);
  const slices = Array.from({ length: RUNNERS }, (_, i) => [i * size, Math.min(cases.length, (i + 1) * size), join(root, `results-${i}.json`)] as const);
  await Promise.all(slices.map(([first, end, results]) => promisify(execFile)(process.execPath, [RUNNER, manifest, String(first), String(end), results], { env: { ...process.env, LORAFORGE_DEBUG: '' }, maxBuffer: 1 << 26 })));
  const outcomes = (await Promise.all(slices.map(async ([, , results]) => JSON.parse(await readFile(results, 'utf8')) as CaseOutcome[]))).flat();
  return new Map(outcomes.map((o) => [o.id, o]));
}

const outcomes = await runAll();

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
    const r = outcomes.get(c.id)!;
    assert.equal(r.crash, null, `${c.id} crashed: ${r.crash}`);
    assertRefusal(c, r.code, r.stderr);
    assert.deepEqual(await filesUnder(join(root, c.id)), before.get(c.id));
  });
}

for (const c of cases.filter((k) => k.valid)) {
  test(`${c.id}: ${c.what} is accepted`, () => {
    const r = outcomes.get(c.id)!;
    assert.equal(r.crash, null, r.stderr);
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
