import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Thrown when the machine has no usable CUDA driver or library; the message is one sentence for a person. */
export class CudaUnavailableError extends Error {
  override readonly name = 'CudaUnavailableError';
}

export const NO_DRIVER_MESSAGE =
  '--device cuda was requested but no CUDA driver was found (libcuda.so.1); install the NVIDIA driver or use --device cpu.';

/**
 * Folders that may hold the CUDA libraries, most specific first: CUDA_HOME / CUDA_PATH, the toolkit's default
 * install, the driver's container mount, LD_LIBRARY_PATH, then the lib folders of Python `nvidia-*` wheels
 * (nvidia/cu13/lib in CUDA 13 wheels, nvidia/<component>/lib before). The dynamic loader's own search
 * (ldconfig cache) is tried first by bare soname, so these only matter when it fails.
 */
export function cudaLibraryDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  for (const home of [env['CUDA_HOME'], env['CUDA_PATH']]) {
    if (!home) continue;
    dirs.push(join(home, 'targets', 'x86_64-linux', 'lib'), join(home, 'lib64'), join(home, 'lib'));
  }
  dirs.push('/usr/local/cuda/targets/x86_64-linux/lib', '/usr/local/cuda/lib64', '/usr/local/nvidia/lib64', '/usr/lib/x86_64-linux-gnu');
  for (const entry of (env['LD_LIBRARY_PATH'] ?? '').split(':')) if (entry) dirs.push(entry);
  dirs.push(...nvidiaWheelLibDirs(env));
  return [...new Set(dirs)].filter((d) => existsSync(d));
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** site-packages folders of the usual Python installs, without running Python. */
function sitePackagesDirs(env: NodeJS.ProcessEnv): string[] {
  const libRoots: string[] = [];
  if (env['VIRTUAL_ENV']) libRoots.push(join(env['VIRTUAL_ENV'], 'lib'));
  if (env['CONDA_PREFIX']) libRoots.push(join(env['CONDA_PREFIX'], 'lib'));
  libRoots.push(join(homedir(), '.local', 'lib'), '/usr/local/lib', '/usr/lib');
  for (const opt of listDir('/opt')) libRoots.push(join('/opt', opt, '.venv', 'lib'), join('/opt', opt, 'lib'));
  for (const version of listDir(join(homedir(), '.pyenv', 'versions'))) libRoots.push(join(homedir(), '.pyenv', 'versions', version, 'lib'));
  const out: string[] = [];
  for (const root of libRoots) {
    for (const py of listDir(root)) {
      if (!py.startsWith('python3')) continue;
      for (const kind of ['site-packages', 'dist-packages']) out.push(join(root, py, kind));
    }
  }
  return out;
}

function nvidiaWheelLibDirs(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const site of sitePackagesDirs(env)) {
    const nv = join(site, 'nvidia');
    for (const component of listDir(nv)) out.push(join(nv, component, 'lib'));
  }
  return out;
}

/**
 * Candidate paths for a library, e.g. stem 'libnvrtc': the bare sonames first (resolved by the loader), then
 * every `stem.so[.N...]` found in the folders above, highest version first within a folder.
 */
export function libraryCandidates(stem: string, sonames: readonly string[], dirs: readonly string[]): string[] {
  const out: string[] = [...sonames];
  const pattern = new RegExp(`^${stem.replace(/[.]/g, '\\.')}\\.so(\\.\\d+)*$`);
  for (const dir of dirs) {
    const found = listDir(dir).filter((n) => pattern.test(n));
    found.sort((a, b) => versionKey(b) - versionKey(a));
    for (const name of found) out.push(join(dir, name));
  }
  return out;
}

function versionKey(name: string): number {
  const parts = name.split('.so')[1]?.split('.').filter(Boolean).map(Number) ?? [];
  return parts.reduce((acc, p, i) => acc + p * 1000 ** (3 - i), 0);
}
