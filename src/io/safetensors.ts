import type { FileHandle } from 'node:fs/promises';
import { FormatError } from './errors.js';
import { openForReading, readExactly } from './file-read.js';
import { invalidSafetensors, LENGTH_PREFIX_BYTES, MAX_HEADER_BYTES, parseSafetensorsHeader } from './safetensors-header.js';
import type { TensorInfo, TensorSource } from './tensor-source.js';

export type { TensorInfo, TensorSource } from './tensor-source.js';

/**
 * One .safetensors file opened lazily: `open` reads and validates only the header; `read` fetches one tensor's
 * bytes with a positioned read, so concurrent reads are safe and memory holds only what was asked for.
 */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private handle: FileHandle | null;
  private readonly tensors: Map<string, TensorInfo>;

  private constructor(path: string, handle: FileHandle, metadata: Record<string, string>, tensors: TensorInfo[]) {
    this.path = path;
    this.handle = handle;
    this.metadata = metadata;
    this.tensors = new Map(tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await openForReading(path, 'safetensors file');
    try {
      const fileSize = (await handle.stat()).size;
      if (fileSize < LENGTH_PREFIX_BYTES) throw invalidSafetensors(path, `it is ${fileSize} bytes long, shorter than the 8-byte header length`);
      const prefix = new Uint8Array(LENGTH_PREFIX_BYTES);
      await readExactly(handle, path, prefix, 0);
      const headerLength = new DataView(prefix.buffer).getBigUint64(0, true);
      if (headerLength > BigInt(fileSize - LENGTH_PREFIX_BYTES)) {
        throw invalidSafetensors(path, `its header length ${headerLength} exceeds the ${fileSize - LENGTH_PREFIX_BYTES} bytes that follow it`);
      }
      if (headerLength > BigInt(MAX_HEADER_BYTES)) {
        throw invalidSafetensors(path, `its header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const headerBytes = new Uint8Array(Number(headerLength));
      await readExactly(handle, path, headerBytes, LENGTH_PREFIX_BYTES);
      const { metadata, tensors } = parseSafetensorsHeader(path, headerBytes, fileSize);
      return new SafetensorsFile(path, handle, metadata, tensors);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  pathOf(): string {
    return this.path;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) {
      throw new FormatError(this.path, `Tensor "${name}" is not in ${this.path}; check the name against the file's ${this.tensors.size} tensors.`);
    }
    return { ...info, shape: [...info.shape] };
  }

  async read(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    if (this.handle === null) throw new Error(`Cannot read tensor "${name}": ${this.path} was already closed.`);
    const bytes = new Uint8Array(info.byteLength);
    await readExactly(this.handle, this.path, bytes, info.dataOffset);
    return bytes;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
  }
}
