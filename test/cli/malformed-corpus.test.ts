import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeMalformedCorpus, runCaptured, type CorpusCase } from '../../scripts/make-malformed-data.js';
import { cli, MODEL, tempDir } from './helpers.js';

/** Every file under `dir` with a hash of its bytes (null: the folder does not exist). */
async function snapshot(dir: string): Promise<Record<string, string> | null> {
  if (!existsSync(dir)) return null;
  const files: Record<string, string> = {};
  const walk = async (d: string, rel: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      if ((await stat(p)).isDirectory()) await walk(p, `${rel}${name}/`);
      else files[`${rel}${name}`] = createHash('sha256').update(await readFile(p)).digest('hex');
    }
  };
  await walk(dir, '');
  return files;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The outcome a case must have: its code; a refusal is one sentence starting with its subject, and changes nothing. */
function checkOutcome(c: CorpusCase, r: { code: number | null; stderr: string }): void {
  assert.equal(r.code, c.code, `${c.name}: exit code ${r.code}, stderr:\n${r.stderr}`);
  if (c.refusal === null) return;
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${c.name}: one line on stderr, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${c.name}: no stack trace`);
  assert.match(lines[0]!, new RegExp(`^loraforge: ${escape(c.refusal.subject)}${c.refusal.reason}`), c.name);
  assert.match(lines[0]!, /\.$/, `${c.name}: a sentence ends with a period`);
}

test('every case of the malformed-input corpus is refused cleanly or, when valid, trained on', async () => {
  const root = await tempDir();
  const cases = await makeMalformedCorpus(join(root, 'corpus'), MODEL);
  assert.ok(cases.length >= 80, `${cases.length} cases`);
  const failures: string[] = [];
  for (const c of cases) {
    const before = await snapshot(c.output);
    const r = await runCaptured(['train', ...c.args]);
    try {
      checkOutcome(c, r);
      if (c.refusal === null) assert.ok(existsSync(join(c.output, 'adapter_model.safetensors')), `${c.name}: the adapter is written`);
      else assert.deepEqual(await snapshot(c.output), before, `${c.name}: the output folder is left as it was`);
    } catch (err) {
      failures.push((err as Error).message.split('\n').slice(0, 6).join('\n'));
    }
  }
  assert.deepEqual(failures, []);
});

test('the built CLI gives a sample of corpus cases the outcome the in-process runs give', async () => {
  const root = await tempDir();
  const cases = await makeMalformedCorpus(join(root, 'corpus'), MODEL);
  for (const name of ['data/utf8-ff-byte', 'tokenizer/vocab-id-1e9', 'resume/scheduler-array', 'model/weights-nan']) {
    const c = cases.find((k) => k.name === name)!;
    const before = await snapshot(c.output);
    checkOutcome(c, cli(['train', ...c.args]));
    assert.deepEqual(await snapshot(c.output), before, `${name}: the output folder is left as it was`);
  }
});
