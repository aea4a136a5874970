import { signedLeb128, unsignedLeb128 } from './leb128.js';
import type { FunctionDefinition, ValueType } from './module.js';

/**
 * Writes one WebAssembly function as a sequence of stack-machine instructions: each method appends one
 * instruction (opcodes from the core specification's instruction index, SIMD ones behind the 0xfd prefix) and
 * returns the builder, so code reads in evaluation order: `f.get(x).i32Const(4).i32Add().set(x)`.
 * Structured control takes a callback for its body and hands it a Label; branches name labels, and the builder
 * turns them into the relative depths the format wants. Memory offsets are byte offsets added to the address
 * on the stack (the memarg's offset), and every access states its natural alignment.
 */

export interface Local {
  readonly index: number;
  readonly type: ValueType;
}

export interface Label {
  /** Position in the builder's stack of open blocks. */
  readonly level: number;
}

const OP = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, brIf: 0x0d,
  localGet: 0x20, localSet: 0x21,
  f32Load: 0x2a, f32Store: 0x38,
  i32Const: 0x41, f32Const: 0x43,
  i32Eq: 0x46, i32LtS: 0x48, i32GtS: 0x4a, i32GeS: 0x4e,
  f32Eq: 0x5b,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c,
  simd: 0xfd,
} as const;

const SIMD = {
  v128Load: 0x00, v128Load32Splat: 0x09, v128Store: 0x0b, v128Const: 0x0c, i8x16Shuffle: 0x0d,
  f32x4Splat: 0x13, f32x4Add: 0xe4, f32x4Mul: 0xe6,
} as const;

/** Block type of a block that takes and leaves nothing on the stack. */
const EMPTY_BLOCK = 0x40;
/** log2 of the natural alignment of f32 and v128 accesses. */
const ALIGN_4 = 2;
const ALIGN_16 = 4;

export class FunctionBuilder {
  private readonly types: ValueType[] = [];
  private readonly paramCount: number;
  private readonly bytes: number[] = [];
  private open = 0;

  constructor(readonly name: string, params: readonly ValueType[]) {
    this.types.push(...params);
    this.paramCount = params.length;
  }

  /** Parameter i, in the order the constructor was given them. */
  param(i: number): Local {
    if (i >= this.paramCount) throw new RangeError(`${this.name}: it has ${this.paramCount} parameters, not ${i + 1}.`);
    return { index: i, type: this.types[i]! };
  }

  local(type: ValueType): Local {
    this.types.push(type);
    return { index: this.types.length - 1, type };
  }

  get(l: Local): this { return this.op(OP.localGet, ...unsignedLeb128(l.index)); }
  set(l: Local): this { return this.op(OP.localSet, ...unsignedLeb128(l.index)); }

  i32Const(value: number): this { return this.op(OP.i32Const, ...signedLeb128(value)); }
  i32Add(): this { return this.op(OP.i32Add); }
  i32Sub(): this { return this.op(OP.i32Sub); }
  i32Mul(): this { return this.op(OP.i32Mul); }
  i32Eq(): this { return this.op(OP.i32Eq); }
  i32LtS(): this { return this.op(OP.i32LtS); }
  i32GtS(): this { return this.op(OP.i32GtS); }
  i32GeS(): this { return this.op(OP.i32GeS); }

  f32Const(value: number): this {
    const bits = new Uint8Array(new Float32Array([value]).buffer);
    return this.op(OP.f32Const, ...bits);
  }
  f32Eq(): this { return this.op(OP.f32Eq); }
  f32Load(offset = 0): this { return this.op(OP.f32Load, ALIGN_4, ...unsignedLeb128(offset)); }
  f32Store(offset = 0): this { return this.op(OP.f32Store, ALIGN_4, ...unsignedLeb128(offset)); }

  v128Load(offset = 0): this { return this.simd(SIMD.v128Load, ALIGN_16, ...unsignedLeb128(offset)); }
  v128Store(offset = 0): this { return this.simd(SIMD.v128Store, ALIGN_16, ...unsignedLeb128(offset)); }
  /** Loads one f32 and replicates it into all four lanes. */
  v128Load32Splat(offset = 0): this { return this.simd(SIMD.v128Load32Splat, ALIGN_4, ...unsignedLeb128(offset)); }
  /** Four f32 lanes, lane 0 first. */
  f32x4Const(lanes: readonly [number, number, number, number]): this {
    return this.simd(SIMD.v128Const, ...new Uint8Array(new Float32Array(lanes).buffer));
  }
  /** Lanes of the result by index into the 32 bytes of the two operands (0-15 the first, 16-31 the second). */
  i8x16Shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => !Number.isInteger(l) || l < 0 || l > 31)) throw new RangeError(`${this.name}: i8x16.shuffle takes 16 lane indices in 0..31.`);
    return this.simd(SIMD.i8x16Shuffle, ...lanes);
  }
  f32x4Splat(): this { return this.simd(SIMD.f32x4Splat); }
  f32x4Add(): this { return this.simd(SIMD.f32x4Add); }
  f32x4Mul(): this { return this.simd(SIMD.f32x4Mul); }

  block(body: (end: Label) => void): this { return this.structured(OP.block, body); }
  /** A branch to a loop's label jumps back to its start. */
  loop(body: (start: Label) => void): this { return this.structured(OP.loop, body); }
  /** Pops an i32 condition; runs `then` when it is non-zero, else `otherwise`. */
  if(then: () => void, otherwise?: () => void): this {
    this.op(OP.if, EMPTY_BLOCK);
    this.open++;
    then();
    if (otherwise) {
      this.op(OP.else);
      otherwise();
    }
    this.open--;
    return this.op(OP.end);
  }
  /** Pops an i32; branches when it is non-zero. */
  brIf(target: Label): this { return this.op(OP.brIf, ...unsignedLeb128(this.depth(target))); }

  /** local += amount (i32). */
  addTo(l: Local, amount: number | Local): this {
    this.get(l);
    if (typeof amount === 'number') this.i32Const(amount);
    else this.get(amount);
    return this.i32Add().set(l);
  }

  /**
   * for (counter = from; counter < limit; counter += step) body(), with a signed comparison; the body does not
   * run when from >= limit. `from` and `step` are constants or locals read once per use.
   */
  forRange(counter: Local, from: number | Local, limit: Local, step: number | Local, body: () => void): this {
    this.push(from).set(counter);
    return this.block((exit) => {
      this.get(counter).get(limit).i32GeS().brIf(exit);
      this.loop((top) => {
        body();
        this.addTo(counter, step);
        this.get(counter).get(limit).i32LtS().brIf(top);
      });
    });
  }

  /** Pushes an i32 constant or a local's value. */
  push(value: number | Local): this {
    return typeof value === 'number' ? this.i32Const(value) : this.get(value);
  }

  finish(results: readonly ValueType[] = []): FunctionDefinition {
    if (this.open !== 0) throw new Error(`${this.name}: ${this.open} block(s) left open.`);
    return { name: this.name, params: this.types.slice(0, this.paramCount), results, locals: this.types.slice(this.paramCount), body: [...this.bytes, OP.end] };
  }

  private structured(opcode: number, body: (label: Label) => void): this {
    this.op(opcode, EMPTY_BLOCK);
    const label: Label = { level: this.open++ };
    body(label);
    this.open--;
    return this.op(OP.end);
  }

  private depth(target: Label): number {
    if (target.level >= this.open) throw new Error(`${this.name}: branch to a block that is not open.`);
    return this.open - 1 - target.level;
  }

  private op(...bytes: number[]): this {
    for (const b of bytes) this.bytes.push(b);
    return this;
  }

  private simd(opcode: number, ...immediates: number[]): this {
    return this.op(OP.simd, ...unsignedLeb128(opcode), ...immediates);
  }
}
