// The package as users get it: `npm pack` of this checkout, installed into a fresh project from the tarball (and
// from the folder), gives a working library (`import ... from 'loraforge'`) and CLI (`npx loraforge`).
// npm installs offline, from the cache that `npm ci` filled; the test is skipped only when npm is absent.
// `npm pack` runs with --ignore-scripts: the suite runs from dist/, so dist/src is already built, and running
// `prepare` (tsc over src/) again would take most of the time budget on 2 cores (~40 s).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../helpers/fixtures.js';

// Not the npm_* variables of an `npm test` that runs this suite: they would configure the child npm.
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
const npmVersion = spawnSync('npm', ['--version'], { env, encoding: 'utf8' });
const skip = npmVersion.error || npmVersion.status !== 0 ? `npm is not on PATH (${npmVersion.error?.message ?? `exit ${npmVersion.status}`})` : false;
if (skip) console.log(`# test/package/install: skipped: ${skip}`);

function spawn(cmd: string, args: readonly string[], cwd: string, timeout: number): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout });
}

function run(cmd: string, args: readonly string[], cwd: string, timeout = 45_000, r = spawn(cmd, args, cwd, timeout)): SpawnSyncReturns<string> {
  assert.equal(r.error, undefined, `${cmd} ${args.join(' ')}: ${r.error?.message}`);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status}${r.signal ? ` (${r.signal})` : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/**
 * A fresh ESM project with `spec` installed offline; returns its folder. `npm ci` caches the tarballs but not
 * the registry's package documents, which a project without a lockfile resolves versions from: when those are
 * not cached (ENOTCACHED) the install is retried with --prefer-offline (tarballs from the cache, documents from
 * the registry) and the test says so.
 */
function installInto(t: { diagnostic(s: string): void }, root: string, name: string, spec: string, extra: readonly string[] = []): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
  const args = (mode: string) => ['install', mode, '--no-audit', '--no-fund', ...extra, spec];
  let r = spawn('npm', args('--offline'), dir, 50_000);
  if (r.status !== 0 && /ENOTCACHED/.test(r.stderr)) {
    t.diagnostic(`${name}: npm install --offline: ${r.stderr.match(/request to \S+/)?.[0] ?? 'ENOTCACHED'} is not in the npm cache; retried with --prefer-offline`);
    rmSync(join(dir, 'node_modules'), { recursive: true, force: true });
    r = spawn('npm', args('--prefer-offline'), dir, 50_000);
    run('npm', args('--prefer-offline'), dir, 50_000, r);
  } else {
    run('npm', args('--offline'), dir, 50_000, r);
  }
  return dir;
}

const CHECK_EXPORTS = "import('loraforge').then((m) => { const ok = typeof m.AutoModelForCausalLM?.fromPretrained === 'function' && typeof m.getPeftModel === 'function' && typeof m.Trainer === 'function'; console.log(ok ? 'exports ok' : 'missing exports: ' + Object.keys(m).join(',')); process.exit(ok ? 0 : 2); })";

test('npm pack: the tarball holds the built library, the CLI, the CUDA kernel sources and the built-in example, and nothing else', { skip, timeout: 120_000 }, (t) => {
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.scripts.prepare, /tsc -p tsconfig\.build\.json/);
  assert.deepEqual(JSON.parse(readFileSync(join(PROJECT_ROOT, 'tsconfig.build.json'), 'utf8')).include, ['src/**/*.ts']);
  assert.equal(pkg.dependencies.vega, undefined);
  assert.equal(pkg.dependencies['vega-lite'], undefined);

  const root = mkdtempSync(join(tmpdir(), 'loraforge-install-'));
  try {
    const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', root], PROJECT_ROOT).stdout) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/src/backend/cpu/gemm-worker.js', 'src/backend/cuda/kernels/lora.cu', 'src/backend/cuda/kernels/common.cuh', 'examples/builtin/model/config.json', 'examples/builtin/train.jsonl']) {
      assert.ok(files.includes(f), `${f} is not in the tarball`);
    }
    const stray = files.filter((f) => /^(dist\/(test|bench)|test|bench|scripts|docs)\//.test(f) || (f.startsWith('src/') && f.endsWith('.ts')));
    assert.deepEqual(stray, [], 'files the runtime does not need');
    const tarball = join(root, packed[0]!.filename);
    assert.ok(existsSync(tarball));

    const fromTarball = installInto(t, root, 'from-tarball', tarball);
    assert.ok(existsSync(join(fromTarball, 'node_modules', 'loraforge', 'dist', 'src', 'index.js')));
    assert.ok(!existsSync(join(fromTarball, 'node_modules', 'vega')), 'vega is installed');
    assert.match(run(process.execPath, ['-e', CHECK_EXPORTS], fromTarball).stdout, /exports ok/);
    const help = run('npx', ['--offline', '--no-install', 'loraforge', '--help'], fromTarball);
    assert.match(help.stdout, /loraforge <command> --help/);
    assert.match(run('npx', ['--offline', '--no-install', 'loraforge', 'train', '--help'], fromTarball).stdout, /--max-steps/);

    assert.equal(run('npx', ['--offline', '--no-install', 'loraforge', '--version'], fromTarball).stdout.trim(), `loraforge ${pkg.version}`);

    // A folder installs as a link to it; --ignore-scripts keeps npm from running its `prepare` (a rebuild of this
    // checkout's dist/src while other test files read it).
    const fromFolder = installInto(t, root, 'from-folder', PROJECT_ROOT, ['--ignore-scripts']);
    assert.match(run(process.execPath, ['-e', CHECK_EXPORTS], fromFolder).stdout, /exports ok/);
    run('npx', ['--offline', '--no-install', 'loraforge', '--help'], fromFolder);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
