import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { ApiError } from './api-error.js';

/**
 * Resolves an adapter folder named in an admin request. `requested` is relative to `root` or absolute; after
 * following every symbolic link it must name a folder strictly inside the real `root`, so neither "..", an absolute
 * path elsewhere, nor a link pointing out of the root reaches other files.
 */
export async function resolveAdapterDir(root: string, requested: string): Promise<string> {
  if (requested.length === 0 || requested.includes('\0')) {
    throw new ApiError(400, '"path" must be a non-empty folder path.', 'invalid_request_error', 'invalid_path', 'path');
  }
  const realRoot = await realpath(root);
  const lexical = resolve(realRoot, requested);
  if (!isStrictlyInside(realRoot, lexical)) throw outsideRoot();
  let real: string;
  try {
    real = await realpath(lexical);
  } catch {
    throw new ApiError(404, `No adapter folder "${requested}" under the adapter root.`, 'invalid_request_error', 'adapter_path_not_found', 'path');
  }
  if (!isStrictlyInside(realRoot, real)) throw outsideRoot();
  if (!(await stat(real)).isDirectory()) {
    throw new ApiError(400, `"${requested}" is not a folder; give the folder holding adapter_config.json.`, 'invalid_request_error', 'invalid_path', 'path');
  }
  return real;
}

function isStrictlyInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

function outsideRoot(): ApiError {
  return new ApiError(403, 'Adapters can only be loaded from folders inside the server\'s --adapter-root.', 'permission_error', 'path_outside_adapter_root', 'path');
}
