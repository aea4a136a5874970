import { constants } from 'node:fs';
import { access, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ApiError } from './api-error.js';
import { ServeOptionError } from './serve-option-error.js';

/**
 * The real path of `--adapter-root`, checked once at start: it must exist, be a folder, and be readable and
 * searchable by the server, so that a mistyped root fails at start instead of on every POST /v1/adapters.
 */
export async function checkAdapterRoot(root: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(root);
  } catch {
    throw new ServeOptionError(`--adapter-root ${root} does not exist; create the folder or pass an existing one.`);
  }
  if (!(await stat(real)).isDirectory()) throw new ServeOptionError(`--adapter-root ${root} is not a folder; pass the folder that holds the adapter folders.`);
  try {
    await access(real, constants.R_OK | constants.X_OK);
  } catch {
    throw new ServeOptionError(`--adapter-root ${root} is not readable by the server; grant it read and execute permission.`);
  }
  return real;
}

/**
 * Resolves an adapter folder named in an admin request. `requested` is relative to `root` (a real path, from
 * checkAdapterRoot) or absolute; after following every symbolic link it must name a folder strictly inside `root`,
 * and every file in it that is a link must point inside `root` too, so neither "..", an absolute path elsewhere, nor
 * a link to a folder or file outside the root reaches other files. Errors name only what the client sent, and
 * `param`: the request field that held the path.
 */
export async function resolveAdapterDir(root: string, requested: string, param = 'path'): Promise<string> {
  if (requested.length === 0 || requested.includes('\0')) {
    throw new ApiError(400, `"${param}" must be a non-empty folder path.`, 'invalid_request_error', 'invalid_path', param);
  }
  const lexical = resolve(root, requested);
  if (!isStrictlyInside(root, lexical)) throw outsideRoot(param);
  let real: string;
  try {
    real = await realpath(lexical);
  } catch {
    throw new ApiError(404, `No adapter folder "${requested}" under the adapter root.`, 'invalid_request_error', 'adapter_path_not_found', param);
  }
  if (!isStrictlyInside(root, real)) throw outsideRoot(param);
  if (!(await stat(real)).isDirectory()) {
    throw new ApiError(400, `"${requested}" is not a folder; give the folder holding adapter_config.json.`, 'invalid_request_error', 'invalid_path', param);
  }
  await refuseLinksOutOfRoot(root, real, requested, param);
  return real;
}

/**
 * The folder `root`/`name` for loading on demand (`name` is an adapter name, so never a path), under the same
 * confinement as resolveAdapterDir; null when there is no such folder, so that the request's model is unknown.
 */
export async function findAdapterDir(root: string, name: string): Promise<string | null> {
  try {
    return await resolveAdapterDir(root, name);
  } catch (error) {
    if (error instanceof ApiError && (error.code === 'adapter_path_not_found' || error.code === 'invalid_path')) return null;
    throw error;
  }
}

/** The adapter loader reads only the folder's own files, so only its direct entries need checking. */
async function refuseLinksOutOfRoot(root: string, dir: string, requested: string, param: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isSymbolicLink()) continue;
    let target: string;
    try {
      target = await realpath(join(dir, entry.name));
    } catch {
      // A dangling link reads nothing; the loader reports the file as missing.
      continue;
    }
    if (!isStrictlyInside(root, target)) {
      throw new ApiError(
        403,
        `"${requested}/${entry.name}" links to a file outside the server's --adapter-root; copy the file into the adapter folder instead.`,
        'permission_error',
        'path_outside_adapter_root',
        param,
      );
    }
  }
}

function isStrictlyInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

function outsideRoot(param: string): ApiError {
  return new ApiError(403, 'Adapters can only be loaded from folders inside the server\'s --adapter-root.', 'permission_error', 'path_outside_adapter_root', param);
}
