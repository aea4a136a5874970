import { appendFile, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { LogEntry } from './trainer-state.js';

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord frames use it. */
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15, add 0xa282ead8. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: uint64 length, masked crc of the length, data, masked crc of the data (all little-endian). */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

class ProtoWriter {
  private readonly parts: number[] = [];
  varint(v: number | bigint): this {
    let x = BigInt(v);
    if (x < 0n) x += 1n << 64n;
    do {
      const byte = Number(x & 0x7fn);
      x >>= 7n;
      this.parts.push(x > 0n ? byte | 0x80 : byte);
    } while (x > 0n);
    return this;
  }
  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }
  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.tag(field, 1);
    for (const x of b) this.parts.push(x);
    return this;
  }
  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.tag(field, 5);
    for (const x of b) this.parts.push(x);
    return this;
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** An Event protobuf (tensorflow/core/util/event.proto): wall_time = 1, step = 2, file_version = 3, summary = 5. */
export function encodeEvent(e: { wallTime: number; step?: number; fileVersion?: string; scalars?: readonly { tag: string; value: number }[] }): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime);
  if (e.step) w.tag(2, 0).varint(e.step);
  if (e.fileVersion !== undefined) w.bytes(3, utf8(e.fileVersion));
  if (e.scalars) {
    const summary = new ProtoWriter();
    // Summary.value = 1 (repeated Value); Value.tag = 1, Value.simple_value = 2 (float).
    for (const s of e.scalars) summary.bytes(1, new ProtoWriter().bytes(1, utf8(s.tag)).float(2, s.value).finish());
    w.bytes(5, summary.finish());
  }
  return w.finish();
}

/** transformers' rewrite_logs: eval_x -> eval/x, test_x -> test/x, everything else train/x. */
export function tensorboardTag(key: string): string {
  if (key.startsWith('eval_')) return `eval/${key.slice(5)}`;
  if (key.startsWith('test_')) return `test/${key.slice(5)}`;
  return `train/${key}`;
}

/** transformers' default logging_dir: runs/<Mon DD_HH-MM-SS>_<hostname>. */
export function defaultLogDir(outputDir: string, now = new Date()): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return join(outputDir, 'runs', `${months[now.getMonth()]}${p(now.getDate())}_${p(now.getHours())}-${p(now.getMinutes())}-${p(now.getSeconds())}_${hostname()}`);
}

/**
 * A TensorBoard event file written as torch's SummaryWriter writes it (events.out.tfevents.<time>.<host>.<pid>.0,
 * first event file_version "brain.Event:2"), taking log_history entries as transformers' TensorBoardCallback does:
 * every numeric value but `step` becomes a scalar at the entry's step, tagged by tensorboardTag.
 */
export class TensorBoardWriter {
  private constructor(readonly path: string) {}

  static async create(logDir: string): Promise<TensorBoardWriter> {
    await mkdir(logDir, { recursive: true });
    const now = Date.now() / 1000;
    const w = new TensorBoardWriter(join(logDir, `events.out.tfevents.${String(Math.floor(now)).padStart(10, '0')}.${hostname()}.${process.pid}.0`));
    await appendFile(w.path, tfRecord(encodeEvent({ wallTime: now, fileVersion: 'brain.Event:2' })));
    return w;
  }

  async log(entry: LogEntry, step: number): Promise<void> {
    const wallTime = Date.now() / 1000;
    const records = Object.entries(entry)
      .filter(([k, v]) => k !== 'step' && typeof v === 'number')
      .map(([k, v]) => tfRecord(encodeEvent({ wallTime, step, scalars: [{ tag: tensorboardTag(k), value: v as number }] })));
    if (records.length) await appendFile(this.path, Buffer.concat(records));
  }
}
