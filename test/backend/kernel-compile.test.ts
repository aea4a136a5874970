/**
 * Every CUDA kernel family compiles, on machines without a GPU too: the exact source NVRTC compiles at run time
 * (common.cuh + the family, kernelSource) goes through nvcc -ptx with NVRTC's options, for sm_80 and sm_90. Skipped
 * where no nvcc is installed (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KERNEL_FAMILIES, kernelSource, kernelSourceDir, NVRTC_OPTIONS } from '../../src/backend/cuda/kernels.js';

function findNvcc(): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), process.env['CUDA_HOME'] ? join(process.env['CUDA_HOME'], 'bin') : '', '/usr/local/cuda/bin'];
  for (const dir of dirs) if (dir && existsSync(join(dir, 'nvcc'))) return join(dir, 'nvcc');
  return null;
}

const nvcc = findNvcc();
const skip = nvcc ? false : 'skipped: no nvcc on this machine';

test('every kernel family in kernels/ is listed in KERNEL_FAMILIES', () => {
  const files = readdirSync(kernelSourceDir()).filter((f) => f.endsWith('.cu')).map((f) => f.slice(0, -3)).sort();
  assert.deepEqual(files, [...KERNEL_FAMILIES].sort());
});

test('every CUDA kernel family compiles with NVRTC\'s options (nvcc -ptx)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'loraforge-kernels-'));
  try {
    for (const family of KERNEL_FAMILIES) {
      const source = join(dir, `${family}.cu`);
      writeFileSync(source, kernelSource(family));
      for (const arch of ['sm_80', 'sm_90']) {
        const r = spawnSync(nvcc!, [`-arch=${arch}`, ...NVRTC_OPTIONS, '-ptx', source, '-o', join(dir, `${family}-${arch}.ptx`)], { encoding: 'utf8' });
        assert.equal(r.status, 0, `${family}.cu for ${arch} does not compile:\n${r.stderr}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
