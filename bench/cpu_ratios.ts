/**
 * Reads bench/cpu_forward.js's JSON lines (both loraforge runs and PyTorch's) on stdin and prints, per case, each
 * loraforge GEMM's tokens/s divided by PyTorch's (OpenBLAS) in the same run: one JSON line per case.
 *
 *   node dist/bench/cpu_ratios.js < lines.jsonl      (bench/cpu_forward.sh runs it on its own output)
 */
import { readFileSync } from 'node:fs';

interface Line {
  readonly case: string;
  readonly impl?: string;
  readonly gemm?: string;
  readonly tokens_per_s?: number;
}

const lines = readFileSync(0, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Line);
const timed = lines.filter((l) => typeof l.tokens_per_s === 'number');
const cases = [...new Set(timed.map((l) => l.case))];
let missing = false;
for (const name of cases) {
  const torch = timed.find((l) => l.case === name && l.impl === 'pytorch');
  if (!torch) {
    console.error(`cpu_ratios: the input has no PyTorch line for case "${name}"; run bench/cpu_forward.sh, which installs python3-torch.`);
    missing = true;
    continue;
  }
  const ratios: Record<string, number> = {};
  for (const l of timed) if (l.case === name && l.impl === 'loraforge' && l.gemm) ratios[l.gemm] = +(l.tokens_per_s! / torch.tokens_per_s!).toFixed(2);
  console.log(JSON.stringify({ case: name, impl: 'ratio', of: 'loraforge tokens/s over pytorch tokens/s', ...ratios }));
}
process.exit(missing ? 1 : 0);
