#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with Node's built-in test runner.
// Works on Node 20 (no glob support in `node --test`) and on the GPU machine (no dev dependencies there).
// LORAFORGE_TEST_DEVICE=cuda selects the backend that the parameterized suites use.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const testDir = join(root, 'dist', 'test');
if (!existsSync(testDir)) {
  console.error('loraforge: dist/test does not exist; run `npm run build` first.');
  process.exit(1);
}
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
})(testDir);
const filter = process.argv[2];
const selected = filter ? files.filter((f) => f.includes(filter)) : files;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...selected], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
