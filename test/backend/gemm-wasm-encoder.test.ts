import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FunctionBuilder, type Label } from '../../src/backend/cpu/wasm/function-builder.js';
import { signedLeb128, unsignedLeb128 } from '../../src/backend/cpu/wasm/leb128.js';
import { encodeModule } from '../../src/backend/cpu/wasm/module.js';
import { compileModule, instantiate, validateModule } from '../../src/backend/cpu/wasm/runtime.js';

/** The WebAssembly binary encoder that the built-in SGEMM's kernels are written with (src/backend/cpu/wasm/). */

describe('LEB128', () => {
  it('encodes unsigned values seven bits at a time, low group first', () => {
    assert.deepEqual(unsignedLeb128(0), [0x00]);
    assert.deepEqual(unsignedLeb128(127), [0x7f]);
    assert.deepEqual(unsignedLeb128(128), [0x80, 0x01]);
    assert.deepEqual(unsignedLeb128(624485), [0xe5, 0x8e, 0x26]);
    assert.deepEqual(unsignedLeb128(0xffffffff), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  });

  it('encodes signed values in two\'s complement, ending where bit 6 carries the sign', () => {
    assert.deepEqual(signedLeb128(0), [0x00]);
    assert.deepEqual(signedLeb128(-1), [0x7f]);
    assert.deepEqual(signedLeb128(63), [0x3f]);
    assert.deepEqual(signedLeb128(64), [0xc0, 0x00]);
    assert.deepEqual(signedLeb128(-64), [0x40]);
    assert.deepEqual(signedLeb128(-65), [0xbf, 0x7f]);
    assert.deepEqual(signedLeb128(-123456), [0xc0, 0xbb, 0x78]);
    assert.deepEqual(signedLeb128(-0x80000000), [0x80, 0x80, 0x80, 0x80, 0x78]);
  });

  it('refuses values outside u32 and i32', () => {
    assert.throws(() => unsignedLeb128(-1), /^RangeError: unsignedLeb128: -1 is not a u32\.$/);
    assert.throws(() => unsignedLeb128(2 ** 32), /^RangeError: unsignedLeb128: 4294967296 is not a u32\.$/);
    assert.throws(() => signedLeb128(2 ** 31), /^RangeError: signedLeb128: 2147483648 is not an i32\.$/);
  });
});

describe('WebAssembly module encoder', () => {
  it('writes the header, the sections in order and the memory export of an empty module', () => {
    const memory = [0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79];
    assert.deepEqual([...encodeModule({ memoryPages: 2, functions: [] })], [
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      1, 1, 0, // types: none
      3, 1, 0, // functions: none
      5, 4, 1, 0x01, 2, 2, // one memory of exactly 2 pages
      7, 10, 1, 6, ...memory, 0x02, 0, // export "memory" = memory 0
      10, 1, 0, // code: none
    ]);
  });

  it('builds a SIMD loop that runs: y[i] += a * x[i] over four lanes at a time', () => {
    const f = new FunctionBuilder('axpy', ['i32', 'i32', 'i32', 'f32']);
    const x = f.param(0), y = f.param(1), bytes = f.param(2), a = f.param(3);
    const at = f.local('i32'), scale = f.local('v128');
    f.get(a).f32x4Splat().set(scale);
    f.forRange(at, 0, bytes, 16, () => {
      f.get(y).get(at).i32Add();
      f.get(y).get(at).i32Add().v128Load();
      f.get(x).get(at).i32Add().v128Load().get(scale).f32x4Mul();
      f.f32x4Add().v128Store();
    });
    const wasm = encodeModule({ memoryPages: 1, functions: [f.finish()] });
    assert.equal(validateModule(wasm), true);
    const { functions, memory } = instantiate(compileModule(wasm));
    const view = new Float32Array(memory);
    view.set([1, 2, 3, 4, 5, 6, 7, 8], 0);
    view.set([10, 20, 30, 40, 50, 60, 70, 80], 8);
    functions.get('axpy')!(0, 32, 32, 0.5);
    assert.deepEqual([...view.subarray(8, 16)], [10.5, 21, 31.5, 42, 52.5, 63, 73.5, 84]);
  });

  it('refuses a branch to a block that is not open, naming the function', () => {
    const f = new FunctionBuilder('broken', []);
    let outer: Label | undefined;
    f.block((label) => { outer = label; });
    assert.throws(() => f.i32Const(1).brIf(outer!), /^Error: broken: branch to a block that is not open\.$/);
  });
});
