import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fixturePath } from '../helpers/fixtures.js';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const MODEL = fixturePath('tiny-llama');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function cli(args: readonly string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, LORAFORGE_DEBUG: '', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI, calls `onLine` for each stdout line (it may signal the child), resolves when it exits. */
export function cliStreaming(args: readonly string[], onLine: (line: string, child: ReturnType<typeof spawn>) => void): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, LORAFORGE_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    let pending = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) onLine(line, child);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-cli-'));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function writeLines(path: string, lines: readonly unknown[]): Promise<string> {
  await writeFile(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
}

/** A few prompt/completion examples the fixture tokenizer handles. */
export async function smallDataset(dir: string): Promise<string> {
  return writeLines(join(dir, 'data.jsonl'), Array.from({ length: 12 }, (_, i) => ({ prompt: `${'acdg'.slice(0, 1 + (i % 4))}>`, completion: [...'acdg'.slice(0, 1 + (i % 4))].reverse().join('') })));
}

/** The user-facing error: one line on stderr, prefixed, no stack trace. */
export function oneSentence(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  if (lines.length !== 1 || !lines[0]!.startsWith('loraforge: ') || /\n\s+at /.test(r.stderr)) throw new Error(`expected one error line, got:\n${r.stderr}`);
  return lines[0]!;
}

/** Starts `loraforge serve ARGS --port 0`, POSTs `body` to /v1/completions, returns the one choice's text and stops it. */
export async function serveOnce(args: readonly string[], body: object): Promise<string> {
  const child = spawn(process.execPath, [MAIN, 'serve', ...args, '--port', '0'], { env: { ...process.env, LORAFORGE_DEBUG: '' } });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const m = /listening on (http:\/\/\S+\/v1)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`serve exited with ${code} before listening`)));
    });
    const res = await fetch(`${url}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { choices: { text: string }[] };
    assert.equal(answer.choices.length, 1);
    return answer.choices[0]!.text;
  } finally {
    child.kill('SIGTERM');
  }
}
