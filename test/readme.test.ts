// Every code block of README.md runs: ```ts blocks are type-checked (strict) and run as ESM against the built
// package (`import ... from 'loraforge'` resolves through package.json's `exports` to dist/src/index.js), and
// ```sh blocks run under `sh -e` with `loraforge` on PATH (dist/src/cli/main.js). Blocks run in document order
// in one scratch folder, so a later block may use what an earlier one wrote (the server serves the adapter that
// "Training from code" trained). Needs `npm run build` first (the suite runs from dist/).
//
// Conventions the README follows:
// - A `<!-- synopsis -->` line right before a block marks it as documentation (usage with [options]): not run.
// - `npm ...` lines of a run block are looked up in NPM_COMMANDS: each is skipped with its reason in the test's
//   name; an npm command missing from the table fails.
// - Hub ids are replaced by local fixtures as SUBSTITUTIONS says, and nothing else is changed. The scratch
//   environment sets HF_HUB_OFFLINE=1 and an empty Hugging Face cache, so an id missing from the table fails
//   instead of downloading; a table entry that no block uses fails too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT, fixturePath } from './helpers/fixtures.js';

/** Hub id in the README -> local fixture the test uses instead, and why that fixture fits. */
const SUBSTITUTIONS: readonly { readonly hubId: string; readonly fixture: string; readonly why: string }[] = [
  { hubId: 'HuggingFaceTB/SmolLM2-135M', fixture: fixturePath('tiny-llama'), why: 'a Llama like SmolLM2, 2 layers, hidden 64' },
  { hubId: 'HuggingFaceTB/SmolLM2-135M-Instruct', fixture: fixturePath('tiny-llama'), why: 'tiny-llama carries a chat template (chat_template.jinja)' },
  { hubId: 'Qwen/Qwen3-30B-A3B', fixture: fixturePath('tiny-qwen3moe'), why: 'a Qwen3MoeForCausalLM as Qwen3-30B-A3B is: 2 layers, 4 experts, top 2' },
  { hubId: 'openai/gsm8k', fixture: fixturePath('gsm8k-mini'), why: 'a folder in the repo\'s layout (main/<split>-00000-of-00001.parquet, question and answer columns); --data takes such a folder as it takes the repo' },
];

/** npm commands the README shows, none of which this test runs. */
const NPM_COMMANDS: readonly { readonly prefix: string; readonly reason: string }[] = [
  { prefix: 'npm install', reason: 'installs into a project (network, or a packed checkout); test/package/install.test.ts tests installing, this suite runs in an installed checkout' },
  { prefix: 'npm start', reason: 'the built-in example (1,500 steps) takes ~90 s on 2 cores; the Command line sh block runs `loraforge train` on a fixture' },
  { prefix: 'npm test', reason: 'it is this suite itself' },
];

const SYNOPSIS_MARK = '<!-- synopsis -->';
const BLOCK_TIMEOUT_MS = 60_000;

interface Block {
  readonly lang: string;
  readonly code: string;
  /** 1-based README line of the opening fence. */
  readonly line: number;
  readonly section: string;
  readonly synopsis: boolean;
}

function readmeBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let section = '(top)';
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#+\s+(.*)$/.exec(lines[i]!);
    if (heading) section = heading[1]!;
    const fence = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`README.md:${start + 1}: a code block is never closed.`);
    let prev = start - 1;
    while (prev >= 0 && lines[prev]!.trim() === '') prev--;
    blocks.push({ lang: fence[1]!, code: body.join('\n') + '\n', line: start + 1, section, synopsis: prev >= 0 && lines[prev]!.trim() === SYNOPSIS_MARK });
  }
  return blocks;
}

const used = new Set<string>();

/** Replaces each table id standing alone (not part of a longer id) and records which ids were used. */
function substitute(code: string, quote: (path: string) => string): string {
  // Longest ids first, so an id that prefixes another (SmolLM2-135M, SmolLM2-135M-Instruct) never eats it.
  const table = [...SUBSTITUTIONS].sort((a, b) => b.hubId.length - a.hubId.length);
  let out = code;
  for (const s of table) {
    const re = new RegExp(`(['"]?)(?<![\\w./-])${s.hubId.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')}(?![\\w./-])\\1`, 'g');
    out = out.replace(re, (m) => {
      used.add(s.hubId);
      return /^['"]/.test(m) ? JSON.stringify(s.fixture) : quote(s.fixture);
    });
  }
  return out;
}

/** Logical sh lines: `\` continuations joined, blank lines dropped. */
function shellLines(code: string): string[] {
  return code.replace(/\\\n/g, ' ').split('\n').filter((l) => l.trim() !== '');
}

const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
const blocks = readmeBlocks(readme);
const work = mkdtempSync(join(tmpdir(), 'loraforge-readme-'));
const hfHome = join(work, '.hf-empty');
const shimDir = join(work, '.bin');
const env: NodeJS.ProcessEnv = {
  ...process.env,
  HF_HUB_OFFLINE: '1',
  HF_HOME: hfHome,
  HF_HUB_CACHE: join(hfHome, 'hub'),
  LORAFORGE_DEBUG: '',
  PATH: `${shimDir}:${process.env.PATH ?? ''}`,
};

test.after(() => rmSync(work, { recursive: true, force: true }));

test('README: every block is ts or sh, or marked <!-- synopsis -->; the marked ones are usage synopses', () => {
  assert.ok(blocks.length > 0);
  for (const b of blocks) {
    assert.ok(b.synopsis || b.lang === 'ts' || b.lang === 'sh', `README.md:${b.line} (${b.section}): a \`\`\`${b.lang} block is neither ts nor sh; mark it ${SYNOPSIS_MARK} if it is documentation`);
    if (b.synopsis) assert.match(b.code, /\[/, `README.md:${b.line}: marked ${SYNOPSIS_MARK} but shows no [options]`);
  }
});

test('README: the scratch package resolves `loraforge` through package.json exports to dist/src/index.js', () => {
  assert.ok(existsSync(join(PROJECT_ROOT, 'dist', 'src', 'index.js')), 'dist/src/index.js is missing; run `npm run build`');
  mkdirSync(join(work, 'node_modules'), { recursive: true });
  symlinkSync(PROJECT_ROOT, join(work, 'node_modules', 'loraforge'), 'dir');
  mkdirSync(hfHome, { recursive: true });
  mkdirSync(shimDir, { recursive: true });
  writeFileSync(join(shimDir, 'loraforge'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js'))} "$@"\n`);
  chmodSync(join(shimDir, 'loraforge'), 0o755);
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'readme-blocks', private: true, type: 'module' }));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', "import * as m from 'loraforge'; console.log(import.meta.resolve('loraforge'), typeof m.Trainer)"], { cwd: work, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `file://${join(PROJECT_ROOT, 'dist', 'src', 'index.js')} function`);
});

const tsBlocks = blocks.filter((b) => b.lang === 'ts' && !b.synopsis);
const tsFile = (b: Block) => `block-${b.line}.ts`;

test(`README: the ${tsBlocks.length} ts blocks type-check (strict) against dist/src/index.d.ts, Hub ids substituted`, () => {
  const tsc = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const b of tsBlocks) writeFileSync(join(work, tsFile(b)), substitute(b.code, (p) => JSON.stringify(p)));
  writeFileSync(
    join(work, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], strict: true,
        types: ['node'], typeRoots: [join(PROJECT_ROOT, 'node_modules', '@types')], skipLibCheck: true, outDir: 'out', rootDir: '.',
      },
      files: tsBlocks.map(tsFile),
    }),
  );
  const r = spawnSync(process.execPath, [tsc, '-p', work], { cwd: work, env, encoding: 'utf8' });
  const located = r.stdout.replace(/block-(\d+)\.ts\((\d+),/g, (_m, at: string, l: string) => `README.md:${Number(at) + Number(l)} (block-${at}.ts(${l}),`);
  assert.equal(r.status, 0, `tsc:\n${located}${r.stderr}`);
});

for (const b of blocks) {
  const where = `README.md:${b.line} (${b.section})`;
  if (b.synopsis) {
    test(`README: ${where}: ${b.lang} usage synopsis, documentation only`, { skip: `marked ${SYNOPSIS_MARK}` }, () => {});
    continue;
  }
  if (b.lang === 'ts') {
    test(`README: ${where}: ts block runs`, (t) => {
      const js = join(work, 'out', tsFile(b).replace(/\.ts$/, '.js'));
      assert.ok(existsSync(js), `${js} was not compiled (see the type-check test)`);
      const r = spawnSync(process.execPath, [js], { cwd: work, env, encoding: 'utf8', timeout: BLOCK_TIMEOUT_MS });
      assert.equal(r.status, 0, `${where} exited ${r.status}${r.signal ? ` (${r.signal})` : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
      for (const line of r.stdout.trim().split('\n').slice(-4)) t.diagnostic(line);
    });
  } else if (b.lang === 'sh') {
    const run: string[] = [];
    for (const line of shellLines(b.code)) {
      const cmd = line.replace(/\s+#.*$/, '').trim();
      if (!/^npm\b/.test(cmd)) {
        run.push(line);
        continue;
      }
      const known = NPM_COMMANDS.find((n) => cmd === n.prefix || cmd.startsWith(`${n.prefix} `));
      if (!known) {
        test(`README: ${where}: \`${cmd}\` is in NPM_COMMANDS`, () => assert.fail(`${where}: \`${cmd}\` is an npm command this test does not know; add it to NPM_COMMANDS with a reason, or mark the block ${SYNOPSIS_MARK}`));
        continue;
      }
      test(`README: ${where}: \`${cmd}\` not run: ${known.reason}`, { skip: known.reason }, () => {});
    }
    if (run.length === 0) continue;
    test(`README: ${where}: sh block runs (${run.length} command line(s))`, (t) => {
      const script = substitute(run.join('\n') + '\n', (p) => `'${p}'`);
      const r = spawnSync('sh', ['-e', '-c', script], { cwd: work, env, encoding: 'utf8', timeout: BLOCK_TIMEOUT_MS * 2 });
      for (const line of r.stdout.trim().split('\n').slice(-4)) t.diagnostic(line);
      assert.equal(r.status, 0, `${where} exited ${r.status}${r.signal ? ` (${r.signal})` : ''}\nscript:\n${script}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    });
  }
}

test('README: every SUBSTITUTIONS entry is used by some block (no stale entries)', () => {
  for (const s of SUBSTITUTIONS) assert.ok(used.has(s.hubId), `${s.hubId} -> ${s.fixture} (${s.why}) is used by no README block; remove it`);
});
