import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { FormatError } from '../../src/io/errors.js';
import { rawSafetensors, tempDir, writeTempFile } from './tmp.js';

/** Opening `bytes` as a file must fail with a FormatError whose message names the file and matches `pattern`. */
async function assertRejectsFile(bytes: Uint8Array | string, pattern: RegExp): Promise<void> {
  const path = await writeTempFile(await tempDir(), 'bad.safetensors', bytes);
  await assert.rejects(SafetensorsFile.open(path), (err: unknown) => {
    assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
    assert.equal(err.path, path);
    assert.ok(err.message.includes(path), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

const F32_2 = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';

test('a missing file is reported by path', async () => {
  const path = join(await tempDir(), 'absent.safetensors');
  await assert.rejects(SafetensorsFile.open(path), (err: unknown) => {
    assert.ok(err instanceof FormatError);
    assert.equal(err.message, `${path} does not exist; check the path of the safetensors file.`);
    return true;
  });
});

test('a directory is not a safetensors file', async () => {
  const dir = await tempDir();
  await assert.rejects(SafetensorsFile.open(dir), /is (not a file|a directory)/);
});

test('a file shorter than 8 bytes is rejected', async () => {
  await assertRejectsFile(new Uint8Array([1, 2, 3]), /3 bytes long, shorter than the 8-byte header length/);
});

test('a header length beyond the end of the file is rejected without allocating it', async () => {
  await assertRejectsFile(rawSafetensors(F32_2, new Uint8Array(8), 1000n), /header length 1000 exceeds the \d+ bytes that follow it/);
  await assertRejectsFile(rawSafetensors(F32_2, new Uint8Array(8), 0xffffffffffffffffn), /header length 18446744073709551615 exceeds/);
});

test('a header that is not JSON is rejected', async () => {
  await assertRejectsFile(rawSafetensors('{"a":{"dtype":', new Uint8Array(0)), /header is not JSON/);
});

test('a header that is not UTF-8 is rejected', async () => {
  const bytes = rawSafetensors('{}  ');
  bytes[9] = 0xff;
  await assertRejectsFile(bytes, /header is not UTF-8/);
});

test('a header that is JSON but not an object is rejected', async () => {
  await assertRejectsFile(rawSafetensors('[1,2,3]'), /header is not a JSON object/);
  await assertRejectsFile(rawSafetensors('null'), /header is not a JSON object/);
});

test('an unknown dtype names the tensor, the dtype and what is supported', async () => {
  await assertRejectsFile(
    rawSafetensors('{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}', new Uint8Array(8)),
    /Tensor "w" in .* has dtype F64, which loraforge cannot load; convert the checkpoint to one of F32, BF16, F16, I32, I64, U8\./,
  );
});

test('a byte range that does not match dtype x shape is rejected', async () => {
  await assertRejectsFile(
    rawSafetensors('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)),
    /tensor "w" \(F32 \[3\]\) needs 12 bytes but its data_offsets \[0, 8\] span 8/,
  );
});

test('malformed shape and data_offsets entries are rejected', async () => {
  await assertRejectsFile(rawSafetensors('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'), /"shape" that is not a list of non-negative integers/);
  await assertRejectsFile(rawSafetensors('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}'), /"data_offsets" that are not two non-negative integers/);
  await assertRejectsFile(rawSafetensors('{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}'), /end before they begin/);
  await assertRejectsFile(rawSafetensors('{"w":[1]}'), /the entry of tensor "w" is not an object/);
});

test('offsets past the end of the data section are rejected (truncated file)', async () => {
  await assertRejectsFile(rawSafetensors(F32_2, new Uint8Array(4)), /tensors need 8 bytes of data but the file holds only 4 after the header; the file is truncated, download or save it again\./);
});

test('trailing bytes that no tensor uses are rejected', async () => {
  await assertRejectsFile(rawSafetensors(F32_2, new Uint8Array(12)), /holds 12 bytes of data after the header but its tensors use only 8/);
});

test('overlapping byte ranges are rejected', async () => {
  const header =
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
  await assertRejectsFile(rawSafetensors(header, new Uint8Array(12)), /tensor "b" starts at data offset 4, inside the bytes of another tensor/);
});

test('a gap between byte ranges is rejected', async () => {
  const header =
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
  await assertRejectsFile(rawSafetensors(header, new Uint8Array(12)), /tensor "b" starts at data offset 8, leaving a gap of 4 bytes/);
});

test('header order may differ from data order when the ranges tile the data exactly', async () => {
  const header =
    '{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  const data = new Uint8Array(new Float32Array([1.5, -2]).buffer);
  const path = await writeTempFile(await tempDir(), 'ok.safetensors', rawSafetensors(header, data));
  const st = await SafetensorsFile.open(path);
  try {
    assert.deepEqual(st.names(), ['b', 'a']);
    assert.deepEqual([...new Float32Array((await st.read('a')).buffer)], [1.5]);
    assert.deepEqual([...new Float32Array((await st.read('b')).buffer)], [-2]);
  } finally {
    await st.close();
  }
});

test('__metadata__ must map strings to strings', async () => {
  await assertRejectsFile(rawSafetensors('{"__metadata__":{"step":3}}'), /"__metadata__\.step" is not a string/);
  await assertRejectsFile(rawSafetensors('{"__metadata__":"pt"}'), /"__metadata__" is not an object/);
});
