// Every package the lock file installs accepts the Node versions this package declares (engines.node ">=20"), so
// `npm install` / `npm ci` on Node 20 prints no EBADENGINE warning.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../helpers/fixtures.js';

interface LockEntry {
  version?: string;
  engines?: { node?: string } | string[];
}

/** The lowest major version a ">= X[.y[.z]]" or ">= X.x" range admits; null for any other form. */
function lowestMajor(range: string): number | null {
  const m = /^>=\s*(\d+)(\.(\d+|x)){0,2}$/.exec(range.trim());
  return m ? Number(m[1]) : null;
}

test('every locked package admits the Node major version this package declares as its minimum', () => {
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
  const ours = lowestMajor(pkg.engines.node);
  assert.equal(ours, 20, `package.json engines.node is ${pkg.engines.node}`);
  const lock = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const refused: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    const range = entry.engines && !Array.isArray(entry.engines) ? entry.engines.node : undefined;
    if (!path || range === undefined) continue;
    const lowest = lowestMajor(range);
    assert.notEqual(lowest, null, `${path}@${entry.version} declares engines.node "${range}", a form this test does not read; extend lowestMajor`);
    if (lowest! > ours!) refused.push(`${path}@${entry.version} (node ${range})`);
  }
  assert.deepEqual(refused, []);
});

test('the range reader takes the forms npm packages write and nothing else', () => {
  assert.deepEqual(['>=20', '>= 10.x', '>=14.17', '>=0.10.0', '^18', '>=18 <23'].map(lowestMajor), [20, 10, 14, 0, null, null]);
});
