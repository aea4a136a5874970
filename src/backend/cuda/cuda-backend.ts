import type { DeviceBuffer, HostArray } from '../../tensor/buffer.js';
import { bytesPerElement, f32ToBf16Bits, f32ToF16Bits, type DType } from '../../tensor/dtype.js';
import type { AdamWArgs, AttentionArgs, AttentionBackwardArgs, AttentionLayout, Backend, BinaryOp, GatedArgs, RowView, LoraAdapterView, MatmulArgs, MultiLoraArgs, MultiLoraOutput, PagedAttentionArgs, PagedKvArgs, PagedKvWriteArgs, ReduceOp, UnaryOp, View } from '../backend.js';
import type { AllocatorStats } from './allocator.js';
import { CudaBuffer } from './cuda-buffer.js';
import { ModeFlag } from '../mode-flag.js';
import { DTYPE_CODES, type KernelFamily } from './kernels.js';
import { contiguousStrides, numelOf as numel } from '../../tensor/shape.js';
import { collapseDims, viewExtent } from './layout.js';
import { CudaRuntime, type CudaDeviceInfo } from './runtime.js';
import { CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES } from './driver.js';

/** Must match U_* in kernels/elementwise.cu. */
const UNARY_CODES: Readonly<Record<UnaryOp, number>> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, sigmoid: 5, silu: 6, abs: 7, square: 8, recip: 9, tanh: 10, relu: 11, gelu: 12, geluTanh: 13,
};
/** Must match B_* in kernels/elementwise.cu. */
const BINARY_CODES: Readonly<Record<BinaryOp, number>> = {
  add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5, siluGrad: 6, gt: 7, geluGrad: 8, geluTanhGrad: 9,
};
/** Must match R_* in kernels/reduce.cu. */
const REDUCE_CODES: Readonly<Record<ReduceOp, number>> = { sum: 0, max: 1 };

/** Threads per block for elementwise kernels; grids are capped and grid-stride loops cover the rest. */
const ELEMENTWISE_THREADS = 256;
const MAX_GRID_X = 2 ** 31 - 1;
/** Threads per block of the gated kernels: 8 columns each, so 2048 columns a block. */
const GATED_THREADS = 128;
const MAX_GRID_Y = 65535;

type Dim3 = readonly [number, number, number];

function hostArrayFor(dtype: DType, length: number): HostArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(length);
    case 'bfloat16':
    case 'float16':
      return new Uint16Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'int64':
      return new BigInt64Array(length);
    case 'uint8':
      return new Uint8Array(length);
  }
}

/** Threads per block for one-block-per-row kernels: enough to give each thread about 8 elements, 64 to 1024. */
function rowThreads(cols: number): number {
  let t = 64;
  while (t < 1024 && t * 8 < cols) t *= 2;
  return t;
}


/** Rows of at most this many columns get a warp each in rmsnorm.cu; wider rows a block each. */
const RMS_WARP_COLS = 1024;
/** Warps per block of the kernels that give each row a warp (rmsnorm, rope, attention_dq_convert). */
const ROW_WARPS = 8;

/** Threads of every attention CTA (4 warps); ATT_THREADS in kernels/attention.cu. */
const ATTENTION_THREADS = 128;
/** Query rows of a tensor-core forward CTA per m-tile of a warp (BR = 64 * MT in att_forward_mma). */
const ATTENTION_MMA_TILE = 64;
/**
 * Dynamic shared memory of the two-m-tile forward (MT = 2: 128-query tiles, Q in shared memory), by head dimension:
 * sK, sV [64][D + 8] and sQ [128][D + 8], 16-bit. Taken without a soft-cap from 256 queries on, where the device
 * lets a block opt in to it: each K and V fragment read from shared memory then feeds two m-tiles' products.
 */
const ATTENTION_MMA_M2_FORWARD_BYTES: Readonly<Record<number, number>> = { 64: 256 * 72 * 2, 128: 256 * 136 * 2 };
const ATTENTION_MMA_M2_MIN_QUERIES = 256;
/** Shared memory a block may use without opting in to more. */
const SHARED_LIMIT = 48 * 1024;
/** Dynamic shared memory of the headDim-256 tensor-core forward (ATT_FWD_SMEM_256 in attention.cu). */
const ATTENTION_MMA_256_FORWARD_BYTES = 101_376;

/** A tensor-core backward kernel: query rows per tile, warps, query-tile buffers (att_backward_mma's BR, NW, NB). */
interface AttentionBackwardVariant {
  readonly rows: number;
  readonly warps: number;
  readonly buffers: number;
}

/** The backward variants of each head dimension, fastest first (ATT_MMA_BACKWARDS in attention.cu). */
const ATTENTION_MMA_BACKWARD: Readonly<Record<number, readonly AttentionBackwardVariant[]>> = {
  64: [{ rows: 64, warps: 4, buffers: 2 }],
  128: [{ rows: 32, warps: 8, buffers: 2 }, { rows: 16, warps: 4, buffers: 1 }],
  256: [{ rows: 32, warps: 8, buffers: 1 }],
};

/** Keys of a backward CTA: 16 per warp, two warps per key group at headDim 256 (KG in att_backward_mma). */
function attentionBackwardKeys(D: number, v: AttentionBackwardVariant): number {
  return (16 * v.warps) / (D > 128 ? 2 : 1);
}

/** Dynamic shared memory of a backward variant in bytes: att_bwd_smem in attention.cu. */
function attentionBackwardBytes(D: number, v: AttentionBackwardVariant): number {
  const keys = attentionBackwardKeys(D, v);
  const halves = D > 128 ? v.warps * 2 * (v.rows / 8) * 4 * 32 : 0;
  return (2 * keys * (D + 8) + v.buffers * 2 * v.rows * (D + 8) + keys * (v.rows + 8)) * 2 + (v.buffers * 2 * v.rows + halves) * 4;
}

/** CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: the most shared memory a block may opt in to. */
const CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;

/**
 * Rows per warp and tile width of a SIMT attention kernel: the largest that fit SHARED_LIMIT. Its shared floats
 * are `rowVectors` arrays [4 * rpw, D], `tileVectors` arrays [bc, D + 1] and `extra` arrays [bc].
 */
function simtAttentionTiles(D: number, rowVectors: number, tileVectors: number, extra: number): { rpw: number; bc: number; bytes: number } {
  for (const [rpw, bc] of [[4, 32], [2, 32], [1, 32], [2, 16], [1, 16]] as const) {
    const bytes = 4 * (rowVectors * 4 * rpw * D + tileVectors * bc * (D + 1) + extra * bc);
    if (bytes <= SHARED_LIMIT) return { rpw, bc, bytes };
  }
  throw new Error(`attention supports head dimensions up to 256, got ${D}.`);
}

/**
 * The suffix of a tensor-core attention kernel: storage and head dimension, after `softcap_` when the scores are
 * soft-capped (the cap is compiled into its own kernels, so that the others keep their element loops as they were).
 */
function attentionMmaName(a: AttentionArgs, mma: 'bf16' | 'f16'): string {
  return `${a.softcap > 0 ? 'softcap_' : ''}${mma}_d${a.headDim}`;
}

/** Threads of a paged attention CTA and the largest head dimension it holds (PAGED_WARPS, PAGED_DIMS_PER_LANE in kernels/kv_cache.cu). */
const PAGED_THREADS = 128;
const PAGED_MAX_HEAD_DIM = 256;

const cublasTypes: ReadonlySet<DType> = new Set<DType>(['float32', 'bfloat16', 'float16']);

/**
 * Rows of op(A) in every GEMM that runs inside batchInvariant(). cuBLAS picks its kernel (tiles, split-K) from the
 * problem it is given: shape, transposes, types, leading dimensions and pointer alignment. Inside batchInvariant()
 * each product is therefore cut into GEMMs of exactly this many rows with lda = k, ldc = n, batch 1 and operands at
 * INVARIANT_ALIGN, so cuBLAS sees one problem whatever m is and a row's bits depend on its own operands alone.
 */
export const INVARIANT_ROWS = 64;
/**
 * Byte alignment of every chunk an invariant GEMM sees: cuMemAlloc returns at least this (the scratch blocks come
 * straight from it), and it is the largest alignment cuBLASLt's preferences name (the default of
 * CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES), so a chunk multiplied in place must have it too, lest cuBLAS choose
 * its kernel differently for it.
 */
const INVARIANT_ALIGN = 256;

/** Bytes of one RowLora entry in kernels/lora.cu: A and B addresses, scale, rank, A's and B's dtype codes. */
const ROW_LORA_BYTES = 32;
/**
 * kernels/lora.cu's LORA_SPLIT (features per block of multi_lora), LORA_OUTPUTS_PER_BLOCK (outputs per block when
 * the features fit one split), LORA_THREADS and LORA_MAX_RANK.
 */
const LORA_SPLIT = 2048;
const LORA_OUTPUTS_PER_BLOCK = 4096;
const LORA_THREADS = 256;
const LORA_MAX_RANK = 1024;
/** Projections per multi_lora launch and the bytes of the LoraOutputs struct (kernels/lora.cu). */
const LORA_MAX_OUTPUTS = 4;
const LORA_OUTPUTS_BYTES = 184;

/** A multiLora row table on the device (one RowLora per row) and the largest rank it names. */
interface LoraTable {
  readonly buffer: CudaBuffer;
  readonly maxRank: number;
}
/** Row tables multiLora keeps on the device (2 KiB each at 64 rows). */
const LORA_TABLE_CACHE = 512;

/**
 * The CUDA implementation of Backend: every method queues work on one stream and returns at once, except
 * toHost and synchronize, which wait for the stream (and raise errors that kernels reported, such as an
 * out-of-range token id). Semantics match CpuBackend kernel by kernel; see kernels/*.cu for each formula.
 * alloc() returns zeroed memory, as the CPU backend's does.
 */
export class CudaBackend implements Backend {
  readonly device: string;
  readonly runtime: CudaRuntime;
  private readonly elementwiseBlocks: number;
  private readonly i32Scratch = new Int32Array(1);
  private readonly u8Scratch = new Uint8Array(1);
  private readonly f32Scratch = new Float32Array(1);
  private readonly u32OfF32 = new Uint32Array(this.f32Scratch.buffer);
  /** Inside batchInvariant(): matmul's GEMMs run as INVARIANT_ROWS-row chunks (invariantGemm). */
  private readonly invariant = new ModeFlag();
  /** multiLora row tables on the device by content, least recently used first (loraRowTable). */
  private readonly loraTables = new Map<string, LoraTable>();
  /** The table key of a row map already seen with these adapter views (callers that reuse plans skip the rebuild). */
  private readonly loraTableKeys = new WeakMap<Int32Array, { adapters: readonly LoraAdapterView[]; key: string }>();
  /** The LoraOutputs struct of kernels/lora.cu, rewritten for each multi_lora launch, and a view to write it. */
  private readonly loraOutputs = new Uint8Array(LORA_OUTPUTS_BYTES);
  private readonly loraOutputsView = new DataView(this.loraOutputs.buffer);
  /**
   * multi_lora's float32 partial sums (inputs wider than one feature split) and its arrival counters (int32, zero
   * between launches), kept between launches (stream order makes reuse safe) and grown to the largest batch seen;
   * emptyCache() gives them back.
   */
  private loraPart: CudaBuffer | null = null;
  private loraArrivals: CudaBuffer | null = null;

  constructor(device: string, ordinal: number) {
    this.device = device;
    this.runtime = CudaRuntime.forDevice(ordinal);
    this.elementwiseBlocks = this.runtime.info.multiprocessors * 16;
  }

  get info(): CudaDeviceInfo {
    return this.runtime.info;
  }

  memoryStats(): AllocatorStats {
    return this.runtime.allocator.stats();
  }

  /** Returns cached free blocks to the driver (after waiting for queued work). */
  emptyCache(): void {
    for (const b of [this.loraPart, this.loraArrivals]) if (b) this.release(b);
    this.loraPart = null;
    this.loraArrivals = null;
    this.runtime.synchronize();
    this.runtime.allocator.emptyCache();
  }

  resetPeakMemory(): void {
    this.runtime.allocator.resetPeak();
  }

  // ---- buffers ----

  private buf(b: DeviceBuffer, what: string): CudaBuffer {
    if (!(b instanceof CudaBuffer)) throw new Error(`A ${b.device} tensor reached the CUDA backend as ${what}; move it with .to('${this.device}') first.`);
    return b;
  }

  /** Address of element `offset` after checking that [offset, offset + count) lies inside the buffer. */
  private span(b: DeviceBuffer, offset: number, count: number, what: string): number {
    const c = this.buf(b, what);
    if (offset < 0 || count < 0 || offset + count > c.length) {
      throw new Error(`${what}: elements [${offset}, ${offset + count}) lie outside a buffer of ${c.length}.`);
    }
    return c.at(offset);
  }

  private viewAddress(v: View, shape: readonly number[], what: string): number {
    const c = this.buf(v.buffer, what);
    if (v.strides.length !== shape.length) throw new Error(`${what}: ${v.strides.length} strides for a shape of rank ${shape.length}.`);
    const { lo, hi } = viewExtent(v.offset, shape, v.strides);
    if (lo < 0 || hi >= c.length) throw new Error(`${what}: the view reaches elements [${lo}, ${hi}] outside a buffer of ${c.length}.`);
    return c.at(v.offset);
  }

  private code(b: DeviceBuffer): number {
    return DTYPE_CODES[b.dtype];
  }

  private allocRaw(dtype: DType, length: number): CudaBuffer {
    this.runtime.makeCurrent();
    return new CudaBuffer(this.device, dtype, length, this.runtime.allocator.alloc(length * bytesPerElement(dtype)));
  }

  alloc(dtype: DType, length: number): DeviceBuffer {
    const b = this.allocRaw(dtype, length);
    const bytes = length * b.bytesPerElement;
    if (bytes > 0) {
      const d = this.runtime.driver;
      if (bytes % 4 === 0) d.check('cuMemsetD32Async', d.cuMemsetD32Async(b.at(0), 0, bytes / 4, this.runtime.stream));
      else d.check('cuMemsetD8Async', d.cuMemsetD8Async(b.at(0), 0, bytes, this.runtime.stream));
    }
    return b;
  }

  /** Straight from the caching allocator: a reused block holds whatever its last owner wrote. */
  allocUninitialized(dtype: DType, length: number): DeviceBuffer {
    return this.allocRaw(dtype, length);
  }

  fromHost(dtype: DType, source: HostArray): DeviceBuffer {
    let data = source;
    if (data.constructor !== hostArrayFor(dtype, 0).constructor) {
      // Converted by value, as the CPU backend's typed-array set() does (bfloat16/float16 come as Uint16Array bits).
      data = hostArrayFor(dtype, source.length);
      (data as { set(a: ArrayLike<number | bigint>): void }).set(source as ArrayLike<number | bigint>);
    }
    const b = this.allocRaw(dtype, data.length);
    if (data.length > 0) {
      const d = this.runtime.driver;
      // From pageable memory the driver stages the bytes before returning, so `data` may change afterwards.
      d.check('cuMemcpyHtoDAsync', d.cuMemcpyHtoDAsync(b.at(0), data, data.byteLength, this.runtime.stream));
    }
    return b;
  }

  async toHost(buffer: DeviceBuffer, offset: number, length: number): Promise<HostArray> {
    return this.toHostNow(buffer, offset, length);
  }

  toHostNow(buffer: DeviceBuffer, offset: number, length: number): HostArray {
    const src = this.span(buffer, offset, length, 'toHost');
    const out = hostArrayFor(buffer.dtype, length);
    const d = this.runtime.driver;
    this.runtime.makeCurrent();
    // A copy into pageable memory waits for the stream itself, so the wait is timed from before it.
    const start = performance.now();
    if (length > 0) d.check('cuMemcpyDtoHAsync', d.cuMemcpyDtoHAsync(out, src, out.byteLength, this.runtime.stream));
    this.runtime.synchronize();
    this.runtime.hostWaitMs += performance.now() - start;
    return out;
  }

  release(buffer: DeviceBuffer): void {
    const ptr = this.buf(buffer, 'release').take();
    if (ptr !== 0) this.runtime.allocator.release(ptr);
  }

  async synchronize(): Promise<void> {
    this.runtime.makeCurrent();
    const start = performance.now();
    this.runtime.synchronize();
    this.runtime.hostWaitMs += performance.now() - start;
  }

  // ---- launching ----

  private fn(family: KernelFamily, name: string): number {
    this.runtime.makeCurrent();
    return this.runtime.kernels.fn(family, name);
  }

  private get args() {
    return this.runtime.params.begin();
  }

  private launch(fn: number, grid: Dim3, block: Dim3): void {
    this.runtime.params.launch(fn, grid, block);
  }

  private elementwiseGrid(n: number): Dim3 {
    return [Math.max(1, Math.min(Math.ceil(n / ELEMENTWISE_THREADS), this.elementwiseBlocks)), 1, 1];
  }

  /** Blocks for kernels that give a warp to each of `rows` rows, ROW_WARPS a block, striding past the cap. */
  private warpRowGrid(rows: number): Dim3 {
    return [Math.max(1, Math.min(Math.ceil(rows / ROW_WARPS), this.elementwiseBlocks)), 1, 1];
  }

  private rowGrid(rows: number): Dim3 {
    return [Math.max(1, Math.min(rows, MAX_GRID_X)), 1, 1];
  }

  // ---- elementwise ----

  fill(out: DeviceBuffer, outOffset: number, length: number, value: number): void {
    const ptr = this.span(out, outOffset, length, 'fill');
    if (length === 0) return;
    this.runtime.makeCurrent();
    const d = this.runtime.driver;
    const stream = this.runtime.stream;
    // Bit patterns exactly as the CPU's typed-array fills produce them.
    switch (out.dtype) {
      case 'float32':
        this.f32Scratch[0] = value;
        d.check('cuMemsetD32Async', d.cuMemsetD32Async(ptr, this.u32OfF32[0]!, length, stream));
        return;
      case 'int32':
        this.i32Scratch[0] = Number.isFinite(value) ? Math.trunc(value) : 0;
        d.check('cuMemsetD32Async', d.cuMemsetD32Async(ptr, this.i32Scratch[0]! >>> 0, length, stream));
        return;
      case 'bfloat16':
        d.check('cuMemsetD16Async', d.cuMemsetD16Async(ptr, f32ToBf16Bits(value), length, stream));
        return;
      case 'float16':
        d.check('cuMemsetD16Async', d.cuMemsetD16Async(ptr, f32ToF16Bits(value), length, stream));
        return;
      case 'uint8':
        this.u8Scratch[0] = value;
        d.check('cuMemsetD8Async', d.cuMemsetD8Async(ptr, this.u8Scratch[0]!, length, stream));
        return;
      case 'int64': {
        const fn = this.fn('elementwise', 'fill_u64');
        this.args.ptr(ptr).i64(Math.trunc(value)).i64(length);
        this.launch(fn, this.elementwiseGrid(length), [ELEMENTWISE_THREADS, 1, 1]);
        return;
      }
    }
  }

  copy(src: View, dst: View, shape: readonly number[]): void {
    const n = numel(shape);
    if (n === 0) return;
    const s = this.viewAddress(src, shape, 'copy source');
    const t = this.viewAddress(dst, shape, 'copy destination');
    const c = collapseDims(shape, [src.strides, dst.strides]);
    const same = src.buffer.dtype === dst.buffer.dtype;
    if (same && c.shape.length === 1 && c.strides[0]![0] === 1 && c.strides[1]![0] === 1) {
      this.runtime.makeCurrent();
      const d = this.runtime.driver;
      d.check('cuMemcpyDtoDAsync', d.cuMemcpyDtoDAsync(t, s, n * bytesPerElement(src.buffer.dtype), this.runtime.stream));
      return;
    }
    const fn = this.fn('elementwise', 'copy_strided');
    this.args.ptr(s).i32(this.code(src.buffer)).ptr(t).i32(this.code(dst.buffer)).strided2(c.shape, c.strides[0]!, c.strides[1]!).i64(n);
    this.launch(fn, this.elementwiseGrid(n), [ELEMENTWISE_THREADS, 1, 1]);
  }

  unary(op: UnaryOp, x: DeviceBuffer, xOffset: number, out: DeviceBuffer, length: number): void {
    const xp = this.span(x, xOffset, length, `unary ${op} input`);
    const op2 = this.span(out, 0, length, `unary ${op} output`);
    if (length === 0) return;
    const fn = this.fn('elementwise', 'unary');
    this.args.i32(UNARY_CODES[op]).ptr(xp).i32(this.code(x)).ptr(op2).i32(this.code(out)).i64(length);
    this.launch(fn, this.elementwiseGrid(length), [ELEMENTWISE_THREADS, 1, 1]);
  }

  binary(op: BinaryOp, a: View, b: View, out: DeviceBuffer, shape: readonly number[]): void {
    const n = numel(shape);
    const op2 = this.span(out, 0, n, `binary ${op} output`);
    if (n === 0) return;
    const ap = this.viewAddress(a, shape, `binary ${op} left operand`);
    const bp = this.viewAddress(b, shape, `binary ${op} right operand`);
    const c = collapseDims(shape, [a.strides, b.strides, contiguousStrides(shape)]);
    const fn = this.fn('elementwise', 'binary_strided');
    this.args.i32(BINARY_CODES[op]).ptr(ap).i32(this.code(a.buffer)).ptr(bp).i32(this.code(b.buffer)).ptr(op2).i32(this.code(out));
    this.runtime.params.strided2(c.shape, c.strides[0]!, c.strides[1]!).i64(n);
    this.launch(fn, this.elementwiseGrid(n), [ELEMENTWISE_THREADS, 1, 1]);
  }

  gated(args: GatedArgs, out: DeviceBuffer): void {
    const n = args.rows * args.cols;
    const gate = this.rowView(args.gate, args, 'gated gate');
    const up = this.rowView(args.up, args, 'gated up');
    const op = this.sameDtypeSpan(out, n, args, 'gated output');
    if (n === 0) return;
    const fn = this.fn('elementwise', 'gated_forward');
    this.args.i32(UNARY_CODES[args.act]).ptr(gate).i64(args.gate.rowStride).ptr(up).i64(args.up.rowStride).ptr(op).i32(this.code(out)).i64(args.rows).i64(args.cols);
    this.launch(fn, this.gatedGrid(args), [GATED_THREADS, 1, 1]);
  }

  gatedBackward(args: GatedArgs, dy: DeviceBuffer, dgate: DeviceBuffer | null, dup: DeviceBuffer | null): void {
    const n = args.rows * args.cols;
    const gate = this.rowView(args.gate, args, 'gated gate');
    const up = this.rowView(args.up, args, 'gated up');
    const dyp = this.sameDtypeSpan(dy, n, args, 'gated gradient');
    const dgp = dgate ? this.sameDtypeSpan(dgate, n, args, 'gated gate gradient') : 0;
    const dup2 = dup ? this.sameDtypeSpan(dup, n, args, 'gated up gradient') : 0;
    if (n === 0 || (!dgate && !dup)) return;
    const fn = this.fn('elementwise', 'gated_backward');
    this.args.i32(UNARY_CODES[args.act]).ptr(gate).i64(args.gate.rowStride).ptr(up).i64(args.up.rowStride).ptr(dyp).ptr(dgp).ptr(dup2)
      .i32(this.code(dy)).i64(args.rows).i64(args.cols);
    this.launch(fn, this.gatedGrid(args), [GATED_THREADS, 1, 1]);
  }

  /** Address of a gated operand's first row after checking its rows lie in the buffer and its dtype is gate's. */
  private rowView(v: RowView, args: GatedArgs, what: string): number {
    if (v.buffer.dtype !== args.gate.buffer.dtype) throw new Error(`${what}: ${v.buffer.dtype} does not match the gate's ${args.gate.buffer.dtype}.`);
    if (args.rows > 1 && v.rowStride < args.cols) throw new Error(`${what}: row stride ${v.rowStride} is shorter than a row of ${args.cols}.`);
    return this.span(v.buffer, v.offset, args.rows === 0 ? 0 : (args.rows - 1) * v.rowStride + args.cols, what);
  }

  private sameDtypeSpan(b: DeviceBuffer, n: number, args: GatedArgs, what: string): number {
    if (b.dtype !== args.gate.buffer.dtype) throw new Error(`${what}: ${b.dtype} does not match the gate's ${args.gate.buffer.dtype}.`);
    return this.span(b, 0, n, what);
  }

  /** x: groups of 8 columns (or columns), GATED_THREADS a block; y: rows, striding past the grid's y limit. */
  private gatedGrid(args: GatedArgs): Dim3 {
    const width = args.cols % 8 === 0 ? args.cols / 8 : args.cols;
    return [Math.max(1, Math.ceil(width / GATED_THREADS)), Math.max(1, Math.min(args.rows, MAX_GRID_Y)), 1];
  }

  affine(x: DeviceBuffer, xOffset: number, out: DeviceBuffer, length: number, scale: number, bias: number): void {
    const xp = this.span(x, xOffset, length, 'affine input');
    const op = this.span(out, 0, length, 'affine output');
    if (length === 0) return;
    const fn = this.fn('elementwise', 'affine');
    this.args.ptr(xp).i32(this.code(x)).ptr(op).i32(this.code(out)).i64(length).f64(scale).f64(bias);
    this.launch(fn, this.elementwiseGrid(length), [ELEMENTWISE_THREADS, 1, 1]);
  }

  reduce(op: ReduceOp, x: DeviceBuffer, xOffset: number, outer: number, axis: number, inner: number, out: DeviceBuffer): void {
    const xp = this.span(x, xOffset, outer * axis * inner, `reduce ${op} input`);
    const op2 = this.span(out, 0, outer * inner, `reduce ${op} output`);
    if (outer * inner === 0) return;
    if (inner === 1) {
      const fn = this.fn('reduce', 'reduce_rows');
      this.args.i32(REDUCE_CODES[op]).ptr(xp).i32(this.code(x)).ptr(op2).i32(this.code(out)).i64(outer).i64(axis);
      this.launch(fn, this.rowGrid(outer), [rowThreads(axis), 1, 1]);
      return;
    }
    const fn = this.fn('reduce', 'reduce_cols');
    const blocks = outer * Math.ceil(inner / 32);
    this.args.i32(REDUCE_CODES[op]).ptr(xp).i32(this.code(x)).ptr(op2).i32(this.code(out)).i64(outer).i64(axis).i64(inner);
    this.launch(fn, [Math.min(blocks, MAX_GRID_X), 1, 1], [32, 8, 1]);
  }

  argmax(x: DeviceBuffer, xOffset: number, rows: number, cols: number, out: DeviceBuffer): void {
    const xp = this.span(x, xOffset, rows * cols, 'argmax input');
    const op = this.span(out, 0, rows, 'argmax output');
    if (out.dtype !== 'int32') throw new Error(`argmax writes int32 indices, got a ${out.dtype} output.`);
    if (rows === 0) return;
    const fn = this.fn('reduce', 'argmax_rows');
    this.args.ptr(xp).i32(this.code(x)).ptr(op).i64(rows).i64(cols);
    this.launch(fn, this.rowGrid(rows), [rowThreads(cols), 1, 1]);
  }

  // ---- matrix multiply ----

  matmul(p: MatmulArgs): void {
    if (p.batch === 0 || p.m === 0 || p.n === 0) return;
    const aRows = p.transA ? p.k : p.m;
    const aCols = p.transA ? p.m : p.k;
    const bRows = p.transB ? p.n : p.k;
    const bCols = p.transB ? p.k : p.n;
    const spanA = p.k === 0 ? 0 : (p.batch - 1) * p.strideA + (aRows - 1) * p.lda + aCols;
    const spanB = p.k === 0 ? 0 : (p.batch - 1) * p.strideB + (bRows - 1) * p.ldb + bCols;
    const spanC = (p.batch - 1) * p.strideC + (p.m - 1) * p.ldc + p.n;
    let a = this.buf(p.a, 'matmul A');
    let b = this.buf(p.b, 'matmul B');
    const c = this.buf(p.c, 'matmul C');
    let aAddr = this.span(a, p.aOffset, spanA, 'matmul A');
    let bAddr = this.span(b, p.bOffset, spanB, 'matmul B');
    const cAddr = this.span(c, p.cOffset, spanC, 'matmul C');
    this.runtime.makeCurrent();

    // cuBLAS multiplies A and B of one floating type into C of that type or float32; other mixes are widened
    // to float32 copies first (the CPU computes every mix in float32 alike).
    const temps: CudaBuffer[] = [];
    const widen = (src: CudaBuffer, addr: number, span: number): [CudaBuffer, number] => {
      const t = this.allocRaw('float32', span);
      temps.push(t);
      this.copyRun(src, addr, t, t.at(0), span);
      return [t, t.at(0)];
    };
    if (a.dtype !== b.dtype || !cublasTypes.has(a.dtype)) {
      if (a.dtype !== 'float32') [a, aAddr] = widen(a, aAddr, spanA);
      if (b.dtype !== 'float32') [b, bAddr] = widen(b, bAddr, spanB);
    }
    let cTarget = c;
    let cTargetAddr = cAddr;
    const cOk = c.dtype === a.dtype || c.dtype === 'float32';
    if (!cOk) {
      cTarget = this.allocRaw('float32', spanC);
      temps.push(cTarget);
      cTargetAddr = cTarget.at(0);
      if (p.beta !== 0) this.copyRun(c, cAddr, cTarget, cTargetAddr, spanC);
    }

    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
    // A leading dimension that no second row uses is raised to cuBLAS's minimum.
    const ldB = bRows === 1 ? Math.max(p.ldb, bCols, 1) : p.ldb;
    const ldA = aRows === 1 ? Math.max(p.lda, aCols, 1) : p.lda;
    const ldC = p.m === 1 ? Math.max(p.ldc, p.n, 1) : p.ldc;
    if (this.invariant.active && p.k > 0) {
      // (k = 0 only scales C, elementwise, which no row's neighbours can change.)
      this.invariantGemm(p, a, aAddr, b, bAddr, ldB, cTarget, cTargetAddr);
    } else {
      this.runtime.cublas.gemm({
        transA: p.transB,
        transB: p.transA,
        m: p.n,
        n: p.m,
        k: p.k,
        alpha: p.alpha,
        a: bAddr, aType: b.dtype, lda: ldB, strideA: p.strideB,
        b: aAddr, bType: a.dtype, ldb: ldA, strideB: p.strideA,
        beta: p.beta,
        c: cTargetAddr, cType: cTarget.dtype, ldc: ldC, strideC: p.strideC,
        batch: p.batch,
      });
    }
    if (cTarget !== c) this.copyRun(cTarget, cTargetAddr, c, cAddr, spanC);
    for (const t of temps) this.release(t);
  }

  /**
   * matmul's GEMM inside batchInvariant(), after the dtype widening: for each batch item, the rows of op(A) (at aAddr,
   * in a) and of C (at cAddr, in c, whose dtype cuBLAS writes) in chunks of INVARIANT_ROWS, each one GEMM with
   * m = INVARIANT_ROWS, lda = k, ldc = n, batch 1 and INVARIANT_ALIGN-aligned operands. A full chunk already laid out
   * so (no transA, lda = k, ldc = n, aligned rows) is multiplied in place; any other chunk (the partial last one,
   * transA, padded rows, an offset that breaks the alignment) goes through INVARIANT_ROWS-row scratch copies, whose
   * padding rows hold whatever the allocator left there: they feed only output rows that are thrown away.
   */
  private invariantGemm(p: MatmulArgs, a: CudaBuffer, aAddr: number, b: CudaBuffer, bAddr: number, ldB: number, c: CudaBuffer, cAddr: number): void {
    const R = INVARIANT_ROWS;
    const { m, n, k } = p;
    // Element offsets of the operands in their buffers (the widened copies start at 0).
    const aBase = (aAddr - a.at(0)) / a.bytesPerElement;
    const cBase = (cAddr - c.at(0)) / c.bytesPerElement;
    const gemm = (bPtr: number, aPtr: number, cPtr: number): void => {
      this.runtime.cublas.gemm({
        transA: p.transB, transB: false, m: n, n: R, k, alpha: p.alpha,
        a: bPtr, aType: b.dtype, lda: ldB, strideA: 0,
        b: aPtr, bType: a.dtype, ldb: k, strideB: 0,
        beta: p.beta,
        c: cPtr, cType: c.dtype, ldc: n, strideC: 0,
        batch: 1,
      });
    };
    let scratchA: CudaBuffer | null = null;
    let scratchC: CudaBuffer | null = null;
    for (let item = 0; item < p.batch; item++) {
      const bPtr = bAddr + item * p.strideB * b.bytesPerElement;
      for (let r0 = 0; r0 < m; r0 += R) {
        const rows = Math.min(R, m - r0);
        // op(A)[i, j] is element aOff + i * aStrides[0] + j * aStrides[1] of a.
        const aStrides = p.transA ? [1, p.lda] : [p.lda, 1];
        const aOff = aBase + item * p.strideA + r0 * aStrides[0]!;
        const cOff = cBase + item * p.strideC + r0 * p.ldc;
        const aPtr = a.at(aOff);
        const cPtr = c.at(cOff);
        if (rows === R && !p.transA && p.lda === k && p.ldc === n && aPtr % INVARIANT_ALIGN === 0 && cPtr % INVARIANT_ALIGN === 0) {
          gemm(bPtr, aPtr, cPtr);
          continue;
        }
        // Stream-ordered: reusing the scratch for the next chunk queues its copies after this chunk's GEMM.
        scratchA ??= this.allocRaw(a.dtype, R * k);
        scratchC ??= this.allocRaw(c.dtype, R * n);
        this.copy({ buffer: a, offset: aOff, strides: aStrides }, { buffer: scratchA, offset: 0, strides: [k, 1] }, [rows, k]);
        // With beta = 0 cuBLAS does not read C.
        if (p.beta !== 0) this.copy({ buffer: c, offset: cOff, strides: [p.ldc, 1] }, { buffer: scratchC, offset: 0, strides: [n, 1] }, [rows, n]);
        gemm(bPtr, scratchA.at(0), scratchC.at(0));
        this.copy({ buffer: scratchC, offset: 0, strides: [n, 1] }, { buffer: c, offset: cOff, strides: [p.ldc, 1] }, [rows, n]);
      }
    }
    if (scratchA) this.release(scratchA);
    if (scratchC) this.release(scratchC);
  }

  /**
   * Runs fn with matmul's GEMMs cut into INVARIANT_ROWS-row chunks (invariantGemm), so each row of a product has the
   * same bits whatever m is and whatever the other rows hold. multiLora needs no mode: its kernels
   * (kernels/lora.cu) already compute each row alone (the row's h reduced over fixed feature splits in a fixed
   * lane, warp and split order; each output summed over t in order), whatever the batch holds. Restores the
   * previous mode when fn returns or throws, so calls nest.
   */
  batchInvariant<T>(fn: () => T): T {
    return this.invariant.run(fn);
  }

  /** Whether matmuls run batch-invariant now (inside batchInvariant()). */
  get batchInvariantActive(): boolean {
    return this.invariant.active;
  }

  multiLora(p: MultiLoraArgs): void {
    const { rows, inFeatures } = p;
    const xp = this.span(p.x, p.xOffset, rows * inFeatures, 'multiLora x');
    for (const o of p.outputs) if (o.rowAdapter.length !== rows) throw new RangeError(`multiLora: ${o.rowAdapter.length} row adapters for ${rows} rows.`);
    const outputs = p.outputs.filter((o) => o.outFeatures > 0);
    if (rows === 0) return;
    const splits = Math.max(1, Math.ceil(inFeatures / LORA_SPLIT));
    for (let first = 0; first < outputs.length; first += LORA_MAX_OUTPUTS) {
      const group = outputs.slice(first, first + LORA_MAX_OUTPUTS);
      const param = this.loraOutputs;
      const view = this.loraOutputsView;
      param.fill(0);
      let rankStride = 0;
      let blocks = 0;
      for (const [i, o] of group.entries()) {
        const table = this.loraRowTable(o, inFeatures);
        rankStride = Math.max(rankStride, table.maxRank);
        setU64(view, 8 * i, table.buffer.at(0));
        setU64(view, 32 + 8 * i, this.span(o.base, o.baseOffset, rows * o.outFeatures, 'multiLora base'));
        setU64(view, 64 + 8 * i, this.span(o.out, 0, rows * o.outFeatures, 'multiLora out'));
        setU64(view, 96 + 8 * i, o.outFeatures);
        view.setInt32(128 + 4 * i, blocks, true);
        view.setInt32(148 + 4 * i, this.code(o.base), true);
        view.setInt32(164 + 4 * i, this.code(o.out), true);
        blocks += Math.ceil(o.outFeatures / LORA_OUTPUTS_PER_BLOCK);
      }
      view.setInt32(128 + 4 * group.length, blocks, true);
      view.setInt32(180, group.length, true);
      // Wider inputs: every row's partial sums per feature split, and a counter per row and output.
      const wide = splits > 1 && rankStride > 0;
      this.loraPart = wide ? this.grown(this.loraPart, 'float32', group.length * rows * splits * rankStride) : this.loraPart;
      this.loraArrivals = wide ? this.grown(this.loraArrivals, 'int32', group.length * rows) : this.loraArrivals;
      this.args
        .bytes(param).ptr(xp).i32(this.code(p.x)).i64(rows).i64(inFeatures)
        .ptr(wide ? this.loraPart!.at(0) : 0).i32(splits).i32(rankStride).ptr(wide ? this.loraArrivals!.at(0) : 0);
      // One feature split: a block per row and block of outputs; more: a block per row, projection and split.
      this.launch(this.fn('lora', 'multi_lora'), [(splits === 1 ? blocks : group.length * splits) * rows, 1, 1], [LORA_THREADS, 1, 1]);
    }
  }

  /** `current` if it holds `length` elements, else a new zeroed buffer that does (the old one released). */
  private grown(current: CudaBuffer | null, dtype: DType, length: number): CudaBuffer {
    if (current && current.length >= length) return current;
    if (current) this.release(current);
    return this.buf(this.alloc(dtype, length), 'multiLora scratch');
  }

  /**
   * The device row table of one multiLora output and its largest rank. A caller that passes the same adapter
   * views and row map again (a cached plan, as LoraLinear keeps) finds its table without rebuilding it.
   */
  private loraRowTable(o: MultiLoraOutput, inFeatures: number): LoraTable {
    const memo = this.loraTableKeys.get(o.rowAdapter);
    let table = memo && memo.adapters === o.adapters ? this.loraRowTableByKey(memo.key) : undefined;
    if (!table) {
      const built = this.buildLoraRowTable(o, inFeatures);
      if (built.maxRank > LORA_MAX_RANK) throw new RangeError(`multiLora on CUDA supports ranks up to ${LORA_MAX_RANK}, got ${built.maxRank}.`);
      const key = Buffer.from(built.table.buffer).toString('latin1');
      table = this.loraRowTableByKey(key) ?? this.cacheLoraRowTable(key, built.table, built.maxRank);
      this.loraTableKeys.set(o.rowAdapter, { adapters: o.adapters, key });
    }
    return table;
  }

  /**
   * One RowLora per row; a row without an adapter stays zero (rank 0), which makes the kernels copy base. Each
   * adapter's entry is built once and copied to its rows.
   */
  private buildLoraRowTable(o: MultiLoraOutput, inFeatures: number): { table: Uint8Array; maxRank: number } {
    const { outFeatures } = o;
    const rows = o.rowAdapter.length;
    const entries = o.adapters.map((adapter) => {
      const entry = new Uint8Array(ROW_LORA_BYTES);
      const view = new DataView(entry.buffer);
      setU64(view, 0, this.span(adapter.a, adapter.aOffset, adapter.rank * inFeatures, 'multiLora A'));
      setU64(view, 8, this.span(adapter.b, adapter.bOffset, outFeatures * adapter.rank, 'multiLora B'));
      view.setFloat32(16, adapter.scale, true);
      view.setInt32(20, adapter.rank, true);
      view.setInt32(24, this.code(adapter.a), true);
      view.setInt32(28, this.code(adapter.b), true);
      return entry;
    });
    const table = new Uint8Array(rows * ROW_LORA_BYTES);
    let maxRank = 0;
    for (let row = 0; row < rows; row++) {
      const slot = o.rowAdapter[row]!;
      if (slot === -1) continue;
      const entry = entries[slot];
      if (!entry) throw new RangeError(`multiLora: row ${row} names adapter ${slot}, but ${o.adapters.length} were given.`);
      table.set(entry, row * ROW_LORA_BYTES);
      maxRank = Math.max(maxRank, o.adapters[slot]!.rank);
    }
    return { table, maxRank };
  }

  /**
   * Device copies of multiLora row tables, kept by content: a decode step asks for the same tables (one per
   * projection) as the step before while the batch keeps its adapters, so steps reuse them instead of copying
   * and allocating each anew. The content is the key (adapter addresses, scales, ranks, dtypes), so an entry is
   * right whenever it is found. Least recently used entries past LORA_TABLE_CACHE are released (stream-ordered).
   */
  private loraRowTableByKey(key: string): LoraTable | undefined {
    const found = this.loraTables.get(key);
    if (found) {
      this.loraTables.delete(key);
      this.loraTables.set(key, found);
    }
    return found;
  }

  private cacheLoraRowTable(key: string, bytes: Uint8Array, maxRank: number): LoraTable {
    const table = { buffer: this.buf(this.fromHost('uint8', bytes), 'multiLora table'), maxRank };
    if (this.loraTables.size >= LORA_TABLE_CACHE) {
      const [oldest, old] = this.loraTables.entries().next().value as [string, LoraTable];
      this.loraTables.delete(oldest);
      this.release(old.buffer);
    }
    this.loraTables.set(key, table);
    return table;
  }

  /** Contiguous run copy with conversion between two device addresses. */
  private copyRun(src: CudaBuffer, srcAddr: number, dst: CudaBuffer, dstAddr: number, count: number): void {
    if (count === 0) return;
    const fn = this.fn('elementwise', 'copy_strided');
    this.args.ptr(srcAddr).i32(this.code(src)).ptr(dstAddr).i32(this.code(dst)).strided2([count], [1], [1]).i64(count);
    this.launch(fn, this.elementwiseGrid(count), [ELEMENTWISE_THREADS, 1, 1]);
  }

  // ---- softmax ----

  softmax(x: DeviceBuffer, rows: number, cols: number, out: DeviceBuffer): void {
    const xp = this.span(x, 0, rows * cols, 'softmax input');
    const yp = this.span(out, 0, rows * cols, 'softmax output');
    if (rows * cols === 0) return;
    const fn = this.fn('softmax', 'softmax_forward');
    this.args.ptr(xp).i32(this.code(x)).ptr(yp).i32(this.code(out)).i64(rows).i64(cols);
    this.launch(fn, this.rowGrid(rows), [rowThreads(cols), 1, 1]);
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, rows: number, cols: number, dx: DeviceBuffer): void {
    const n = rows * cols;
    const yp = this.span(y, 0, n, 'softmaxBackward y');
    const gp = this.span(dy, 0, n, 'softmaxBackward dy');
    const xp = this.span(dx, 0, n, 'softmaxBackward dx');
    if (n === 0) return;
    const fn = this.fn('softmax', 'softmax_backward');
    this.args.ptr(yp).i32(this.code(y)).ptr(gp).i32(this.code(dy)).ptr(xp).i32(this.code(dx)).i64(rows).i64(cols);
    this.launch(fn, this.rowGrid(rows), [rowThreads(cols), 1, 1]);
  }

  // ---- rms norm ----

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, rows: number, cols: number, eps: number, out: DeviceBuffer, rstd: DeviceBuffer): void {
    const n = rows * cols;
    const xp = this.span(x, 0, n, 'rmsNorm x');
    const wp = this.span(weight, 0, cols, 'rmsNorm weight');
    const yp = this.span(out, 0, n, 'rmsNorm output');
    const rp = this.span(rstd, 0, rows, 'rmsNorm rstd');
    if (n === 0) return;
    const fn = this.fn('rmsnorm', 'rmsnorm_forward');
    this.args.ptr(xp).i32(this.code(x)).ptr(wp).i32(this.code(weight)).ptr(yp).i32(this.code(out)).ptr(rp).i32(this.code(rstd));
    this.runtime.params.i64(rows).i64(cols).f64(eps).i32(x.dtype === 'float32' ? 0 : 1);
    this.launchRms(fn, rows, cols);
  }

  /** A warp per row up to RMS_WARP_COLS columns, else a block per row. */
  private launchRms(fn: number, rows: number, cols: number): void {
    if (cols <= RMS_WARP_COLS) this.launch(fn, this.warpRowGrid(rows), [32, ROW_WARPS, 1]);
    else this.launch(fn, this.rowGrid(rows), [rowThreads(cols), 1, 1]);
  }

  rmsNormBackward(
    x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, rows: number, cols: number, dx: DeviceBuffer, dweight: DeviceBuffer | null,
  ): void {
    const n = rows * cols;
    const xp = this.span(x, 0, n, 'rmsNormBackward x');
    const wp = this.span(weight, 0, cols, 'rmsNormBackward weight');
    const rp = this.span(rstd, 0, rows, 'rmsNormBackward rstd');
    const gp = this.span(dy, 0, n, 'rmsNormBackward dy');
    const dxp = this.span(dx, 0, n, 'rmsNormBackward dx');
    const dwp = dweight ? this.span(dweight, 0, cols, 'rmsNormBackward dweight') : 0;
    if (cols === 0) return;
    if (rows > 0) {
      const fn = this.fn('rmsnorm', 'rmsnorm_backward_dx');
      this.args.ptr(xp).i32(this.code(x)).ptr(wp).i32(this.code(weight)).ptr(rp).i32(this.code(rstd)).ptr(gp).i32(this.code(dy));
      this.runtime.params.ptr(dxp).i32(this.code(dx)).i64(rows).i64(cols);
      this.launchRms(fn, rows, cols);
    }
    if (!dweight) return;
    if (rows === 0) {
      this.fill(dweight, 0, cols, 0);
      return;
    }
    // Deterministic two-stage column sum: float32 partials per chunk of rows, then a float64 reduce_cols.
    const chunkRows = Math.max(1, Math.ceil(rows / 128));
    const chunks = Math.ceil(rows / chunkRows);
    const partial = this.allocRaw('float32', chunks * cols);
    const fn = this.fn('rmsnorm', 'rmsnorm_backward_dw_partial');
    this.args.ptr(xp).i32(this.code(x)).ptr(rp).i32(this.code(rstd)).ptr(gp).i32(this.code(dy)).ptr(partial.at(0)).i64(rows).i64(cols).i64(chunkRows);
    this.launch(fn, [Math.ceil(cols / 32), chunks, 1], [32, 8, 1]);
    const reduce = this.fn('reduce', 'reduce_cols');
    this.args.i32(REDUCE_CODES.sum).ptr(partial.at(0)).i32(DTYPE_CODES.float32).ptr(dwp).i32(this.code(dweight)).i64(1).i64(chunks).i64(cols);
    this.launch(reduce, [Math.ceil(cols / 32), 1, 1], [32, 8, 1]);
    this.release(partial);
  }

  // ---- rope ----

  rope(
    x: DeviceBuffer, cos: DeviceBuffer, sin: DeviceBuffer, tableBatchStride: number, batch: number, seq: number, heads: number, headDim: number,
    out: DeviceBuffer, inverse: boolean, rotaryDim = headDim,
  ): void {
    const n = batch * seq * heads * headDim;
    if (rotaryDim % 2 !== 0 || !(rotaryDim > 0 && rotaryDim <= headDim)) throw new Error(`rope needs an even rotary dimension in (0, ${headDim}], got ${rotaryDim}.`);
    const tableLen = tableBatchStride === 0 ? seq * rotaryDim : (batch - 1) * tableBatchStride + seq * rotaryDim;
    const xp = this.span(x, 0, n, 'rope x');
    const cp = this.span(cos, 0, tableLen, 'rope cos');
    const sp = this.span(sin, 0, tableLen, 'rope sin');
    const yp = this.span(out, 0, n, 'rope output');
    if (n === 0) return;
    const fn = this.fn('rope', 'rope');
    this.args.ptr(xp).i32(this.code(x)).ptr(cp).i32(this.code(cos)).ptr(sp).i32(this.code(sin)).ptr(yp).i32(this.code(out));
    this.runtime.params.i64(tableBatchStride).i64(batch).i64(seq).i64(heads).i64(headDim).i64(rotaryDim).i32(inverse ? 1 : 0);
    // A warp per (b, t, head) row.
    this.launch(fn, this.warpRowGrid(n / headDim), [32, ROW_WARPS, 1]);
  }

  // ---- embedding ----

  embedding(ids: DeviceBuffer, table: DeviceBuffer, count: number, dim: number, out: DeviceBuffer): void {
    const ip = this.span(ids, 0, count, 'embedding ids');
    const tp = this.span(table, 0, table.length, 'embedding table');
    const op = this.span(out, 0, count * dim, 'embedding output');
    if (count * dim === 0) return;
    const fn = this.fn('embedding', 'embedding_forward');
    this.args.ptr(ip).i32(this.code(ids)).ptr(tp).i32(this.code(table)).ptr(op).i32(this.code(out));
    this.runtime.params.i64(count).i64(dim).i64(Math.floor(table.length / dim)).ptr(this.runtime.statusPtr);
    this.launch(fn, this.elementwiseGrid(count * dim), [ELEMENTWISE_THREADS, 1, 1]);
  }

  embeddingBackward(ids: DeviceBuffer, dy: DeviceBuffer, count: number, dim: number, dtable: DeviceBuffer): void {
    const ip = this.span(ids, 0, count, 'embeddingBackward ids');
    const gp = this.span(dy, 0, count * dim, 'embeddingBackward dy');
    const table = this.buf(dtable, 'embeddingBackward dtable');
    if (count * dim === 0) return;
    // Atomics accumulate in float32; a narrower table is widened, accumulated, and rounded once at the end,
    // as the CPU reference does.
    const acc = table.dtype === 'float32' ? table : this.allocRaw('float32', table.length);
    if (acc !== table) this.copyRun(table, table.at(0), acc, acc.at(0), table.length);
    const fn = this.fn('embedding', 'embedding_backward');
    this.args.ptr(ip).i32(this.code(ids)).ptr(gp).i32(this.code(dy)).ptr(acc.at(0)).i64(count).i64(dim).i64(Math.floor(table.length / dim));
    this.launch(fn, this.elementwiseGrid(count * dim), [ELEMENTWISE_THREADS, 1, 1]);
    if (acc !== table) {
      this.copyRun(acc, acc.at(0), table, table.at(0), table.length);
      this.release(acc);
    }
  }

  // ---- cross-entropy ----

  crossEntropy(logits: DeviceBuffer, labels: DeviceBuffer, rows: number, vocab: number, ignoreIndex: number, losses: DeviceBuffer, lse: DeviceBuffer): void {
    const xp = this.span(logits, 0, rows * vocab, 'crossEntropy logits');
    const lp = this.span(labels, 0, rows, 'crossEntropy labels');
    const op = this.span(losses, 0, rows, 'crossEntropy losses');
    const ep = this.span(lse, 0, rows, 'crossEntropy lse');
    if (rows === 0) return;
    const fn = this.fn('cross_entropy', 'cross_entropy_forward');
    this.args.ptr(xp).i32(this.code(logits)).ptr(lp).i32(this.code(labels)).ptr(op).i32(this.code(losses)).ptr(ep).i32(this.code(lse));
    this.runtime.params.i64(rows).i64(vocab).i64(ignoreIndex).ptr(this.runtime.statusPtr);
    this.launch(fn, this.rowGrid(rows), [rowThreads(vocab), 1, 1]);
  }

  crossEntropyBackward(
    logits: DeviceBuffer, lse: DeviceBuffer, labels: DeviceBuffer, scale: DeviceBuffer, rows: number, vocab: number, ignoreIndex: number, dlogits: DeviceBuffer,
  ): void {
    const xp = this.span(logits, 0, rows * vocab, 'crossEntropyBackward logits');
    const ep = this.span(lse, 0, rows, 'crossEntropyBackward lse');
    const lp = this.span(labels, 0, rows, 'crossEntropyBackward labels');
    const sp = this.span(scale, 0, rows, 'crossEntropyBackward scale');
    const dp = this.span(dlogits, 0, rows * vocab, 'crossEntropyBackward dlogits');
    if (rows * vocab === 0) return;
    const threads = 256;
    const fn = this.fn('cross_entropy', 'cross_entropy_backward');
    this.args.ptr(xp).i32(this.code(logits)).ptr(ep).i32(this.code(lse)).ptr(lp).i32(this.code(labels)).ptr(sp).i32(this.code(scale));
    this.runtime.params.ptr(dp).i32(this.code(dlogits)).i64(rows).i64(vocab).i64(ignoreIndex);
    this.launch(fn, [Math.ceil(vocab / (threads * 4)), Math.min(rows, MAX_GRID_Y), 1], [threads, 1, 1]);
  }

  // ---- optimizer ----

  adamw(param: DeviceBuffer, grad: DeviceBuffer, expAvg: DeviceBuffer, expAvgSq: DeviceBuffer, length: number, a: AdamWArgs): void {
    const pp = this.span(param, 0, length, 'adamw param');
    const gp = this.span(grad, 0, length, 'adamw grad');
    const mp = this.span(expAvg, 0, length, 'adamw expAvg');
    const vp = this.span(expAvgSq, 0, length, 'adamw expAvgSq');
    if (length === 0) return;
    // Scalars folded in float64 and rounded to float32 exactly as CpuBackend.adamw does (f32() rounds).
    const bc1 = 1 - a.beta1 ** a.step;
    const bc2Sqrt = Math.sqrt(1 - a.beta2 ** a.step);
    const fn = this.fn('adamw', 'adamw');
    this.args.ptr(pp).i32(this.code(param)).ptr(gp).i32(this.code(grad)).ptr(mp).i32(this.code(expAvg)).ptr(vp).i32(this.code(expAvgSq)).i64(length);
    this.runtime.params
      .f32(1 - a.lr * a.weightDecay)
      .f32(1 - a.beta1)
      .f32(a.beta2)
      .f32(1 - a.beta2)
      .f32(a.lr / bc1)
      .f32(bc2Sqrt)
      .f32(a.eps);
    this.launch(fn, this.elementwiseGrid(length), [ELEMENTWISE_THREADS, 1, 1]);
  }

  // ---- quantization ----

  nf4Dequantize(packed: DeviceBuffer, absmax: DeviceBuffer, code: DeviceBuffer, length: number, blocksize: number, out: DeviceBuffer): void {
    if (packed.dtype !== 'uint8') throw new Error(`nf4Dequantize: packed codes must be uint8, got ${packed.dtype}.`);
    const pp = this.span(packed, 0, Math.ceil(length / 2), 'nf4Dequantize packed');
    const ap = this.span(absmax, 0, Math.ceil(length / blocksize), 'nf4Dequantize absmax');
    const cp = this.span(code, 0, 16, 'nf4Dequantize code');
    const op = this.span(out, 0, length, 'nf4Dequantize output');
    if (length === 0) return;
    const fn = this.fn('nf4', 'nf4_dequantize');
    this.args.ptr(pp).ptr(ap).i32(this.code(absmax)).ptr(cp).i32(this.code(code)).ptr(op).i32(this.code(out)).i64(length).i64(blocksize);
    this.launch(fn, this.elementwiseGrid(length), [ELEMENTWISE_THREADS, 1, 1]);
  }

  // ---- attention ----

  private checkAttention(a: AttentionArgs, buffers: readonly DeviceBuffer[]): void {
    const dtype = buffers[0]!.dtype;
    if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') throw new Error(`attention needs float tensors, got ${dtype}.`);
    if (buffers.some((b) => b.dtype !== dtype)) throw new Error(`attention operands must share one dtype, got ${buffers.map((b) => b.dtype).join(', ')}.`);
    if (a.headDim < 1 || a.headDim > 256) throw new Error(`attention supports head dimensions 1 to 256 on CUDA, got ${a.headDim}.`);
    if (a.seqK < 1) throw new Error('attention needs at least one key position.');
    if (a.heads % a.kvHeads !== 0) throw new Error(`${a.heads} query heads are not a multiple of ${a.kvHeads} key/value heads.`);
    if (a.causal && a.seqQ > a.seqK) throw new Error(`causal attention needs seqQ (${a.seqQ}) <= seqK (${a.seqK}).`);
    if (a.keyMask && a.keyMask.dtype !== 'float32') throw new Error(`the attention key mask must be float32, got ${a.keyMask.dtype}.`);
  }

  /** Device address of the attention sinks (float32, one logit per query head), or 0 without them. */
  private sinksAddress(a: { readonly sinks?: DeviceBuffer | null; readonly heads: number }): number {
    if (!a.sinks) return 0;
    if (a.sinks.dtype !== 'float32') throw new Error(`attention sinks must be float32, got ${a.sinks.dtype}.`);
    return this.span(a.sinks, 0, a.heads, 'attention sinks');
  }

  /** Device address of an attention operand, after checking that its [batch, heads, rows, headDim] view fits its buffer. */
  private attentionAddress(b: DeviceBuffer, l: AttentionLayout, a: Pick<AttentionArgs, 'batch' | 'headDim'>, heads: number, rows: number, what: string): number {
    const view = { buffer: b, offset: l.offset, strides: [l.batchStride, l.headStride, l.rowStride, 1] };
    return this.viewAddress(view, [a.batch, heads, rows, a.headDim], `attention ${what}`);
  }

  /** The device's opt-in shared memory per block (bytes), read once. */
  private attentionSharedOptin: number | null = null;
  /** Kernels whose dynamic shared memory limit was raised (cuFuncSetAttribute), so that it is set once each. */
  private readonly attentionSharedSet = new Set<number>();

  /**
   * The device's opt-in shared memory per block, or less where LORAFORGE_CUDA_SHARED_OPTIN (bytes) says so: the
   * kernel choice of a smaller part (99 KiB on sm_86/89, 163 KiB on A100) can then be tested on a larger one.
   */
  private sharedOptin(): number {
    if (this.attentionSharedOptin === null) {
      const device = this.runtime.driver.attribute(this.runtime.driver.device(this.info.ordinal), CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
      const cap = Number(process.env['LORAFORGE_CUDA_SHARED_OPTIN'] ?? Infinity);
      this.attentionSharedOptin = Math.min(device, Number.isFinite(cap) && cap > 0 ? cap : Infinity);
    }
    return this.attentionSharedOptin;
  }

  /** Lets `fn` launch with `bytes` of dynamic shared memory: above 48 KiB only once the attribute is set. */
  private allowShared(fn: number, bytes: number): number {
    if (bytes > SHARED_LIMIT && !this.attentionSharedSet.has(fn)) {
      this.runtime.driver.funcSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
      this.attentionSharedSet.add(fn);
    }
    return bytes;
  }

  /**
   * 'bf16' or 'f16' when the tensor-core kernels apply: that storage on sm_80 or newer, headDim 64, 128 or 256, and
   * every row 16-byte aligned (cp.async and the vector stores move 16 bytes); null for the SIMT kernels. Each pass
   * also needs a kernel whose shared memory the device lets a block opt in to (attentionBackwardVariant; the
   * headDim-256 forward: 99 KiB).
   */
  private attentionMma(dtype: DType, D: number, addresses: readonly number[], layouts: readonly AttentionLayout[]): 'bf16' | 'f16' | null {
    if ((dtype !== 'bfloat16' && dtype !== 'float16') || (D !== 64 && D !== 128 && D !== 256)) return null;
    if (Number(this.info.computeCapability.split('.')[0]) < 8) return null;
    if (addresses.some((p) => p % 16 !== 0)) return null;
    if (layouts.some((l) => l.batchStride % 8 !== 0 || l.headStride % 8 !== 0 || l.rowStride % 8 !== 0)) return null;
    return dtype === 'bfloat16' ? 'bf16' : 'f16';
  }

  /** The fastest backward variant of head dimension D that fits the device's opt-in shared memory, or null. */
  private attentionBackwardVariant(D: number): AttentionBackwardVariant | null {
    return (ATTENTION_MMA_BACKWARD[D] ?? []).find((v) => attentionBackwardBytes(D, v) <= this.sharedOptin()) ?? null;
  }

  /** Strides in the order the kernels take them: batch, head, row. */
  private pushLayout(l: AttentionLayout): void {
    this.runtime.params.i64(l.batchStride).i64(l.headStride).i64(l.rowStride);
  }

  /**
   * The shape, scale, causality, window and soft-cap, in the kernels' order. A window of seqK or more hides no key
   * (no query is seqK or more positions past a key), so it goes as 0 and the kernels skip the window's checks.
   */
  private pushShape(a: AttentionArgs): void {
    this.runtime.params.i32(a.batch).i32(a.heads).i32(a.kvHeads).i32(a.seqQ).i32(a.seqK).i32(a.headDim).f32(a.scale).i32(a.causal ? 1 : 0);
    this.runtime.params.i32(a.window < a.seqK ? a.window : 0).f32(a.softcap);
  }

  attention(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, a: AttentionArgs): void {
    this.checkAttention(a, [q, k, v, out]);
    const { batch: B, heads: H, kvHeads: Hkv, seqQ: T, seqK: S, headDim: D } = a;
    if (B * H * T === 0) return;
    const qp = this.attentionAddress(q, a.q, a, H, T, 'q');
    const kp = this.attentionAddress(k, a.k, a, Hkv, S, 'k');
    const vp = this.attentionAddress(v, a.v, a, Hkv, S, 'v');
    const op = this.attentionAddress(out, a.out, a, H, T, 'out');
    const lp = this.span(lse, 0, B * H * T, 'attention lse');
    const mp = a.keyMask ? this.span(a.keyMask, 0, B * S, 'attention keyMask') : 0;
    const storage = this.attentionMma(q.dtype, D, [qp, kp, vp, op], [a.q, a.k, a.v, a.out]);
    const mma = storage && (D !== 256 || this.sharedOptin() >= ATTENTION_MMA_256_FORWARD_BYTES) ? storage : null;
    const tiles = mma ? null : simtAttentionTiles(D, 1, 2, 0);
    const m2Bytes = ATTENTION_MMA_M2_FORWARD_BYTES[D];
    const m2 = mma !== null && m2Bytes !== undefined && a.softcap === 0 && T >= ATTENTION_MMA_M2_MIN_QUERIES && m2Bytes <= this.sharedOptin();
    const fn = this.fn('attention', mma ? `attention_forward_mma_${attentionMmaName(a, mma)}${m2 ? '_m2' : ''}` : 'attention_forward_simt');
    const shared = m2 ? this.allowShared(fn, m2Bytes) : mma && D === 256 ? this.allowShared(fn, ATTENTION_MMA_256_FORWARD_BYTES) : 0;
    this.args.ptr(qp).ptr(kp).ptr(vp).ptr(op).ptr(lp).ptr(mp).i32(this.code(q));
    for (const l of [a.q, a.k, a.v, a.out]) this.pushLayout(l);
    this.pushShape(a);
    this.runtime.params.ptr(this.sinksAddress(a));
    if (!tiles) {
      this.runtime.params.launch(fn, [Math.ceil(T / (ATTENTION_MMA_TILE * (m2 ? 2 : 1))), H, B], [ATTENTION_THREADS, 1, 1], shared);
      return;
    }
    this.runtime.params.i32(tiles.rpw).i32(tiles.bc);
    this.runtime.params.launch(fn, [Math.ceil(T / (4 * tiles.rpw)), H, B], [ATTENTION_THREADS, 1, 1], tiles.bytes);
  }

  attentionBackward(
    q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, dout: DeviceBuffer,
    dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, a: AttentionBackwardArgs,
  ): void {
    this.checkAttention(a, [q, k, v, out, dout, dq, dk, dv]);
    const { batch: B, heads: H, kvHeads: Hkv, seqQ: T, seqK: S, headDim: D } = a;
    if (B * H * T === 0) throw new Error('attentionBackward needs at least one query.');
    const qp = this.attentionAddress(q, a.q, a, H, T, 'q');
    const kp = this.attentionAddress(k, a.k, a, Hkv, S, 'k');
    const vp = this.attentionAddress(v, a.v, a, Hkv, S, 'v');
    const op = this.attentionAddress(out, a.out, a, H, T, 'out');
    const gp = this.attentionAddress(dout, a.dout, a, H, T, 'dout');
    const dqp = this.attentionAddress(dq, a.dq, a, H, T, 'dq');
    const dkp = this.attentionAddress(dk, a.dk, a, Hkv, S, 'dk');
    const dvp = this.attentionAddress(dv, a.dv, a, Hkv, S, 'dv');
    const lp = this.span(lse, 0, B * H * T, 'attentionBackward lse');
    const mp = a.keyMask ? this.span(a.keyMask, 0, B * S, 'attentionBackward keyMask') : 0;
    const rows = B * H * T;
    const dvec = this.allocRaw('float32', rows);
    const storage = this.attentionMma(q.dtype, D, [qp, kp, vp, op, gp, dkp, dvp], [a.q, a.k, a.v, a.out, a.dout, a.dk, a.dv]);
    const variant = storage ? this.attentionBackwardVariant(D) : null;
    const mma = variant ? storage : null;
    // The tensor-core kernel adds dq into float32 scratch with atomics; attention_dq_convert rounds it into dq.
    const scratch = mma ? this.buf(this.alloc('float32', rows * D), 'attention dq scratch') : null;
    const params = (fnName: string, dqTarget: number): number => {
      const fn = this.fn('attention', fnName);
      this.args.ptr(qp).ptr(kp).ptr(vp).ptr(op).ptr(gp).ptr(lp).ptr(dvec.at(0)).ptr(mp).ptr(dqTarget).ptr(dkp).ptr(dvp).i32(this.code(q));
      for (const l of [a.q, a.k, a.v, a.out, a.dout, a.dq, a.dk, a.dv]) this.pushLayout(l);
      this.pushShape(a);
      return fn;
    };
    const dot = params('attention_backward_dot', dqp);
    this.runtime.params.launch(dot, [Math.ceil((rows * 32) / ATTENTION_THREADS), 1, 1], [ATTENTION_THREADS, 1, 1]);
    if (scratch && mma && variant) {
      const name = `${attentionMmaName(a, mma)}_r${variant.rows}_w${variant.warps}_b${variant.buffers}`;
      const fn = params(`attention_backward_mma_${name}`, scratch.at(0));
      const shared = this.allowShared(fn, attentionBackwardBytes(D, variant));
      this.runtime.params.launch(fn, [Math.ceil(S / attentionBackwardKeys(D, variant)), Hkv, B], [32 * variant.warps, 1, 1], shared);
      const convert = this.fn('attention', 'attention_dq_convert');
      this.args.ptr(scratch.at(0)).ptr(dqp).i32(this.code(dq)).i64(a.dq.batchStride).i64(a.dq.headStride).i64(a.dq.rowStride);
      this.runtime.params.i32(B).i32(H).i32(T).i32(D).f32(a.scale);
      this.launch(convert, this.warpRowGrid(rows), [32, ROW_WARPS, 1]);
      this.release(scratch);
    } else {
      const qTiles = simtAttentionTiles(D, 2, 2, 0);
      const dqFn = params('attention_backward_dq_simt', dqp);
      this.runtime.params.i32(qTiles.rpw).i32(qTiles.bc);
      this.runtime.params.launch(dqFn, [Math.ceil(T / (4 * qTiles.rpw)), H, B], [ATTENTION_THREADS, 1, 1], qTiles.bytes);
      const kTiles = simtAttentionTiles(D, 2, 2, 2);
      const kvFn = params('attention_backward_dkdv_simt', dqp);
      this.runtime.params.i32(kTiles.rpw).i32(kTiles.bc);
      this.runtime.params.launch(kvFn, [Math.ceil(S / (4 * kTiles.rpw)), Hkv, B], [ATTENTION_THREADS, 1, 1], kTiles.bytes);
    }
    this.release(dvec);
  }

  // ---- paged KV cache ----

  /** Checks the pools and tables (sizes only: the kernels trust the entries, which ops/nn-ops.ts builds). */
  private pagedAddresses(a: PagedKvArgs, kPool: DeviceBuffer, vPool: DeviceBuffer, operands: readonly DeviceBuffer[]): { k: number; v: number; table: number; lengths: number } {
    const dtype = kPool.dtype;
    if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') throw new Error(`the paged KV cache needs float pools, got ${dtype}.`);
    if ([vPool, ...operands].some((b) => b.dtype !== dtype)) throw new Error(`paged KV operands must share one dtype, got ${[kPool, vPool, ...operands].map((b) => b.dtype).join(', ')}.`);
    if (a.headDim < 1 || a.headDim > PAGED_MAX_HEAD_DIM) throw new Error(`paged attention supports head dimensions 1 to ${PAGED_MAX_HEAD_DIM} on CUDA, got ${a.headDim}.`);
    if (a.blockTable.dtype !== 'int32' || a.lengths.dtype !== 'int32') throw new Error('the paged KV block table and lengths must be int32.');
    const poolSize = a.poolBlocks * a.kvHeads * a.blockSize * a.headDim;
    return {
      k: this.span(kPool, 0, poolSize, 'paged KV key pool'),
      v: this.span(vPool, 0, poolSize, 'paged KV value pool'),
      table: this.span(a.blockTable, 0, a.batch * a.maxBlocks, 'paged KV block table'),
      lengths: this.span(a.lengths, 0, a.batch, 'paged KV lengths'),
    };
  }

  pagedKvWrite(k: DeviceBuffer, v: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, a: PagedKvWriteArgs): void {
    const pools = this.pagedAddresses(a, kPool, vPool, [k, v]);
    const n = a.batch * a.kvHeads * a.seq * a.headDim;
    if (n === 0) return;
    const shape = { batch: a.batch, headDim: a.headDim } as const;
    const kp = this.attentionAddress(k, a.k, shape, a.kvHeads, a.seq, 'paged KV keys');
    const vp = this.attentionAddress(v, a.v, shape, a.kvHeads, a.seq, 'paged KV values');
    const fn = this.fn('kv_cache', 'paged_kv_write');
    this.args.ptr(kp).ptr(vp).i32(this.code(k)).ptr(pools.k).ptr(pools.v).i32(this.code(kPool)).ptr(pools.table).ptr(pools.lengths);
    this.pushLayout(a.k);
    this.pushLayout(a.v);
    this.runtime.params.i32(a.batch).i32(a.kvHeads).i32(a.seq).i32(a.headDim).i32(a.blockSize).i32(a.maxBlocks);
    this.launch(fn, this.elementwiseGrid(n), [ELEMENTWISE_THREADS, 1, 1]);
  }

  pagedAttention(q: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, out: DeviceBuffer, a: PagedAttentionArgs): void {
    const pools = this.pagedAddresses(a, kPool, vPool, [q, out]);
    if (a.heads % a.kvHeads !== 0) throw new Error(`${a.heads} query heads are not a multiple of ${a.kvHeads} key/value heads.`);
    if (a.batch * a.heads * a.seq === 0) return;
    if (a.seq > MAX_GRID_Y || a.batch > MAX_GRID_Y) throw new RangeError(`paged attention takes at most ${MAX_GRID_Y} rows and ${MAX_GRID_Y} new positions per row.`);
    const shape = { batch: a.batch, headDim: a.headDim } as const;
    const qp = this.attentionAddress(q, a.q, shape, a.heads, a.seq, 'paged attention q');
    const op = this.attentionAddress(out, a.out, shape, a.heads, a.seq, 'paged attention out');
    const fn = this.fn('kv_cache', 'paged_attention');
    this.args.ptr(qp).ptr(op).ptr(pools.k).ptr(pools.v).i32(this.code(q)).ptr(pools.table).ptr(pools.lengths);
    this.pushLayout(a.q);
    this.pushLayout(a.out);
    this.runtime.params.i32(a.heads).i32(a.kvHeads).i32(a.seq).i32(a.headDim).i32(a.blockSize).i32(a.maxBlocks).f32(a.scale);
    // No row holds more than maxBlocks * blockSize positions, so a window that long hides nothing: it goes as 0.
    this.runtime.params.i32(a.window < a.maxBlocks * a.blockSize ? a.window : 0).f32(a.softcap).ptr(this.sinksAddress(a));
    this.launch(fn, [a.heads, a.seq, a.batch], [PAGED_THREADS, 1, 1]);
  }
}

/** Writes a non-negative integer below 2^53 (an address, a count) as a little-endian u64 without a BigInt. */
function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}
