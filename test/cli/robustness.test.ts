import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, MAIN, MODEL, oneSentence, smallDataset, tempDir } from './helpers.js';

const TINY = ['--max-steps', '2', '--save-steps', '1', '--batch-size', '2', '--samples', '0'];

/** A finished two-step run with checkpoint-1. */
async function finishedRun(dir: string): Promise<string> {
  const out = join(dir, 'run');
  const r = cli(['train', '--model', MODEL, '--data', await smallDataset(dir), '--output', out, ...TINY]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

test('kill -9 during the final adapter write leaves a .tmp file that the next train in that folder removes', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const child = fileURLToPath(new URL('./kill-final-write-child.js', import.meta.url));
  const killed = spawnSync(process.execPath, [child, out, 'train', '--model', MODEL, '--data', await smallDataset(dir), '--output', out, ...TINY], { encoding: 'utf8' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  const left = readdirSync(out).filter((n) => n.endsWith('.tmp'));
  assert.equal(left.length, 1);
  assert.match(left[0]!, new RegExp(`^\\.adapter_model\\.safetensors\\.${killed.pid}\\.[0-9a-f]{12}\\.tmp$`));
  assert.equal(existsSync(join(out, 'adapter_model.safetensors')), false);

  const resumed = cli(['train', '--output', out, '--resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(readdirSync(out).filter((n) => n.endsWith('.tmp')), []);
  assert.equal(existsSync(join(out, 'adapter_model.safetensors')), true);
});

test('train | head -2 exits quietly with the SIGPIPE status 141 once head is gone', async () => {
  const dir = await tempDir();
  const command = `"${process.execPath}" "${MAIN}" train --model "${MODEL}" --data "${await smallDataset(dir)}" --output "${join(dir, 'run')}" --max-steps 40 --logging-steps 1 --batch-size 2 2>"${join(dir, 'stderr')}" | head -2; echo "status=\${PIPESTATUS[0]}"`;
  const r = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3, r.stdout);
  assert.match(lines[0]!, /^data: 12 training and 0 held-out prompt_completion examples$/);
  assert.equal(lines[2], 'status=141');
  assert.equal(await readFile(join(dir, 'stderr'), 'utf8'), '');
});

test('a full disk (ENOSPC) is one sentence naming the file being written', async () => {
  const dir = await tempDir();
  const out = await finishedRun(dir);
  // Writes to /dev/full fail with ENOSPC, as on a full disk; metrics.jsonl is rewritten in place on resume.
  await rm(join(out, 'metrics.jsonl'));
  await symlink('/dev/full', join(out, 'metrics.jsonl'));
  const r = cli(['train', '--output', out, '--resume', join(out, 'checkpoint-1')]);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: ${join(out, 'metrics.jsonl')} could not be written (ENOSPC): the disk is full; free space there or pass --output on another disk.`);
});

test('training_args.json that is not JSON is one sentence naming it on --resume', async () => {
  const dir = await tempDir();
  const out = await finishedRun(dir);
  await writeFile(join(out, 'training_args.json'), '{"loraforge_options": ');
  const r = cli(['train', '--output', out, '--resume']);
  assert.equal(r.code, 1);
  assert.match(oneSentence(r), new RegExp(`^loraforge: ${join(out, 'training_args\\.json')} is not valid JSON \\(.+\\); the run folder is damaged, so start again with --overwrite\\.$`));
});
