import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { runNodeScript } from '../helpers/run-node.js';

const SOAK = fileURLToPath(new URL('../../bench/soak.js', import.meta.url));

interface Summary {
  event: 'summary';
  requests: number;
  errors: number;
  error_examples: string[];
  identical_under_load: boolean;
  identical_after_load: boolean;
  mismatches: string[];
  rss_mib: number[];
  rss_growth: number;
}

/** Runs bench/soak.ts as a user would; resolves with its exit code and its JSON lines. */
async function runSoak(args: string[]): Promise<{ code: number | null; lines: { event: string }[]; stderr: string }> {
  const { code, stdout, stderr } = await runNodeScript(SOAK, args);
  return { code, stderr, lines: stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { event: string }) };
}

describe('soak: 30 s of 32 clients on the base model and 4 adapters through `loraforge serve`', () => {
  it('answers every request, greedy outputs equal the same requests sent alone, resident memory flat after warm-up', async () => {
    const { code, lines, stderr } = await runSoak(['--duration', '30', '--warmup', '12', '--sample', '0.5']);
    const summary = lines.find((l): l is Summary => l.event === 'summary');
    assert.ok(summary, `no summary line; stderr: ${stderr}`);
    assert.deepEqual(summary.error_examples, []);
    assert.equal(summary.errors, 0);
    assert.ok(summary.requests >= 500, `only ${summary.requests} requests in 30 s`);
    assert.deepEqual(summary.mismatches, []);
    assert.equal(summary.identical_under_load, true);
    assert.equal(summary.identical_after_load, true);
    assert.ok(summary.rss_mib.length >= 24, `${summary.rss_mib.length} memory samples after warm-up`);
    assert.ok(summary.rss_growth <= 0.1, `resident memory grew by ${(summary.rss_growth * 100).toFixed(1)}% after warm-up: ${summary.rss_mib.join(', ')} MiB`);
    assert.equal(code, 0);
  });
});
