import { FunctionBuilder, type Local } from './function-builder.js';
import { encodeModule } from './module.js';

/**
 * The WebAssembly SIMD kernels of the built-in SGEMM (gemm-kernel.ts drives them). Addresses and strides are
 * byte offsets into the instance's own memory; every float is f32 and every product is an f32x4.mul followed
 * by an f32x4.add (WebAssembly never fuses them, so the arithmetic is the same on every machine).
 *
 * Element (i, j) of a depth block is always: s = -0; for p in order: s = s + a[i][p] * b[p][j]; then
 * C = alpha * s, or alpha * s + beta * C. -0 is the exact identity of +, so this is the sum of the products in
 * depth order whatever the tile, lane or kernel that computes it: what makes the GEMM batch-invariant.
 *
 *   pack(width)  copies a depth block of an operand into micro-panels of `width` lanes, zero-padded;
 *   tiles        every TILE_ROWS x TILE_COLS tile of a block of C from packed panels (the register tile);
 *   rows         one row of C from a row of op(A) and packed panels or row-major rows of B, for blocks too
 *                short for tiles.
 */

/**
 * Rows and columns (f32 lanes, a multiple of 4) of the register tile: 8 v128 accumulators, 2 B vectors, a
 * broadcast A value and a product fit x64's 16 vector registers. Measured on one thread (GFLOP/s of CPU time,
 * 512 x 2048 x 2048 B^T / 1024 x 1408 x 512 B, on a shared 2-core Zen 4): 4 x 8 20-22 / 20-34, 6 x 8 20-21 /
 * 20-23, 5 x 8 20 / 21, 4 x 12 20 / 23, 3 x 16 23 / 24, 2 x 16 22-24 / 17-35; none beat 4 x 8 beyond the noise.
 */
export const TILE_ROWS = 4;
export const TILE_COLS = 8;
const VECTORS = TILE_COLS / 4;
/** Columns the row kernel computes at once: 4 panels = 8 accumulators, enough to hide the add latency. */
const ROW_PANELS = 4;

const F32 = 4;
const V128 = 16;

/**
 * pack(src, colStride, depthStride, cols, kc, dst): element (p, j) of the block, at src + j * colStride +
 * p * depthStride, goes to panel floor(j / width), at dst + (panel * kc + p) * width + j % width floats;
 * lanes of the last panel past `cols` are zero. Whole panels take one of three copies by layout: lanes
 * contiguous (v128 moves), depth contiguous (4 x 4 transposes in registers), or neither (one f32 at a time).
 */
function pack(name: string, width: number): FunctionBuilder {
  const f = new FunctionBuilder(name, ['i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const src = f.param(0), colStride = f.param(1), depthStride = f.param(2), cols = f.param(3), kc = f.param(4), dst = f.param(5);
  const j = f.local('i32'), p = f.local('i32'), left = f.local('i32'), row = f.local('i32'), at = f.local('i32');
  const panelStride = f.local('i32'), depthEnd = f.local('i32');
  const v = Array.from({ length: 4 }, () => f.local('v128'));
  const t = Array.from({ length: 4 }, () => f.local('v128'));
  f.get(colStride).i32Const(width).i32Mul().set(panelStride);

  /** One depth step of the panel, lane by lane; lanes at or past `left` are zero when `checked`. */
  const scalarStep = (checked: boolean): void => {
    f.get(row).set(at);
    for (let lane = 0; lane < width; lane++) {
      if (checked) {
        f.get(left).i32Const(lane).i32GtS().if(
          () => { f.get(dst).get(at).f32Load().f32Store(lane * F32); },
          () => { f.get(dst).f32Const(0).f32Store(lane * F32); },
        );
      } else {
        f.get(dst).get(at).f32Load().f32Store(lane * F32);
      }
      f.addTo(at, colStride);
    }
    f.addTo(dst, width * F32);
    f.addTo(row, depthStride);
  };
  const scalarSteps = (checked: boolean): void => { f.forRange(p, p, kc, 1, () => scalarStep(checked)); };
  /** Four depth steps of each group of four lanes: rows of the source become columns of the panel. */
  const transposedSteps = (): void => {
    f.get(kc).i32Const(3).i32Sub().set(depthEnd);
    f.forRange(p, 0, depthEnd, 4, () => {
      for (let group = 0; group < width / 4; group++) {
        f.get(row).get(colStride).i32Const(4 * group).i32Mul().i32Add().set(at);
        for (let lane = 0; lane < 4; lane++) {
          f.get(at).v128Load().set(v[lane]!);
          if (lane < 3) f.addTo(at, colStride);
        }
        shuffle(f, v[0]!, v[1]!, [0, 4, 1, 5], t[0]!);
        shuffle(f, v[0]!, v[1]!, [2, 6, 3, 7], t[1]!);
        shuffle(f, v[2]!, v[3]!, [0, 4, 1, 5], t[2]!);
        shuffle(f, v[2]!, v[3]!, [2, 6, 3, 7], t[3]!);
        shuffle(f, t[0]!, t[2]!, [0, 1, 4, 5], v[0]!);
        shuffle(f, t[0]!, t[2]!, [2, 3, 6, 7], v[1]!);
        shuffle(f, t[1]!, t[3]!, [0, 1, 4, 5], v[2]!);
        shuffle(f, t[1]!, t[3]!, [2, 3, 6, 7], v[3]!);
        for (let step = 0; step < 4; step++) f.get(dst).get(v[step]!).v128Store((step * width + group * 4) * F32);
      }
      f.addTo(dst, 4 * width * F32);
      f.addTo(row, 4 * F32);
    });
  };

  f.forRange(j, 0, cols, width, () => {
    f.get(cols).get(j).i32Sub().set(left);
    f.get(src).set(row);
    f.i32Const(0).set(p);
    f.get(left).i32Const(width).i32LtS().if(
      () => scalarSteps(true),
      () => {
        f.get(colStride).i32Const(F32).i32Eq().if(
          () => {
            f.forRange(p, 0, kc, 1, () => {
              for (let q = 0; q < width / 4; q++) f.get(dst).get(row).v128Load(q * V128).v128Store(q * V128);
              f.addTo(dst, width * F32);
              f.addTo(row, depthStride);
            });
          },
          () => {
            f.get(depthStride).i32Const(F32).i32Eq().if(() => transposedSteps());
            scalarSteps(false);
          },
        );
      },
    );
    f.addTo(src, panelStride);
  });
  return f;
}

/** out = the f32 lanes `lanes` of (x, y): 0-3 pick x's lanes, 4-7 y's. */
function shuffle(f: FunctionBuilder, x: Local, y: Local, lanes: readonly number[], out: Local): void {
  f.get(x).get(y).i8x16Shuffle(lanes.flatMap((lane) => [4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3])).set(out);
}

/** C block stores: alpha * s, or alpha * s + beta * C when beta is not 0 (C is not read then, so NaN there is overwritten). */
function storeScaled(f: FunctionBuilder, acc: Local, address: Local, offset: number, alpha: Local, beta: Local, betaZero: Local): void {
  f.get(betaZero).if(
    () => { f.get(address).get(acc).get(alpha).f32x4Mul().v128Store(offset); },
    () => { f.get(address).get(acc).get(alpha).f32x4Mul().get(address).v128Load(offset).get(beta).f32x4Mul().f32x4Add().v128Store(offset); },
  );
}

/**
 * tiles(pa, pb, c, mc, nc, kc, ldc, alpha, beta): C[0:mc, 0:nc] from mc / TILE_ROWS packed A panels and
 * nc / TILE_COLS packed B panels, both of depth kc >= 1; mc and nc are multiples of the tile; ldc in bytes.
 * The B panel is the outer loop, so it stays in L1 while the A panels stream from L2.
 */
function tiles(): FunctionBuilder {
  const f = new FunctionBuilder('tiles', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32']);
  const pa = f.param(0), pb = f.param(1), c = f.param(2), mc = f.param(3), nc = f.param(4), kc = f.param(5), ldc = f.param(6);
  const alphaScalar = f.param(7), betaScalar = f.param(8);
  const alpha = f.local('v128'), beta = f.local('v128'), betaZero = f.local('i32');
  const jr = f.local('i32'), ir = f.local('i32'), p = f.local('i32');
  const aPanel = f.local('i32'), bPanel = f.local('i32'), ap = f.local('i32'), bp = f.local('i32'), cTile = f.local('i32'), cRow = f.local('i32');
  const aPanelBytes = f.local('i32'), bPanelBytes = f.local('i32'), rowsBytes = f.local('i32');
  const acc = Array.from({ length: TILE_ROWS }, () => Array.from({ length: VECTORS }, () => f.local('v128')));
  const b = Array.from({ length: VECTORS }, () => f.local('v128'));
  const a = f.local('v128');

  f.get(alphaScalar).f32x4Splat().set(alpha);
  f.get(betaScalar).f32x4Splat().set(beta);
  f.get(betaScalar).f32Const(0).f32Eq().set(betaZero);
  f.get(kc).i32Const(TILE_ROWS * F32).i32Mul().set(aPanelBytes);
  f.get(kc).i32Const(TILE_COLS * F32).i32Mul().set(bPanelBytes);
  f.get(ldc).i32Const(TILE_ROWS).i32Mul().set(rowsBytes);

  /** One depth step at ap / bp. TurboFan unrolls the loop around it (an unrolled builder loop measured no faster). */
  const step = (): void => {
    for (let q = 0; q < VECTORS; q++) f.get(bp).v128Load(q * V128).set(b[q]!);
    for (let r = 0; r < TILE_ROWS; r++) {
      f.get(ap).v128Load32Splat(r * F32).set(a);
      for (let q = 0; q < VECTORS; q++) f.get(acc[r]![q]!).get(a).get(b[q]!).f32x4Mul().f32x4Add().set(acc[r]![q]!);
    }
  };

  f.get(pb).set(bPanel);
  f.forRange(jr, 0, nc, TILE_COLS, () => {
    f.get(pa).set(aPanel);
    f.get(c).get(jr).i32Const(F32).i32Mul().i32Add().set(cTile);
    f.forRange(ir, 0, mc, TILE_ROWS, () => {
      for (const row of acc) for (const v of row) f.f32x4Const([-0, -0, -0, -0]).set(v);
      f.get(aPanel).set(ap);
      f.get(bPanel).set(bp);
      f.forRange(p, 0, kc, 1, () => {
        step();
        f.addTo(ap, TILE_ROWS * F32);
        f.addTo(bp, TILE_COLS * F32);
      });
      f.get(cTile).set(cRow);
      for (let r = 0; r < TILE_ROWS; r++) {
        for (let q = 0; q < VECTORS; q++) storeScaled(f, acc[r]![q]!, cRow, q * V128, alpha, beta, betaZero);
        f.addTo(cRow, ldc);
      }
      f.addTo(aPanel, aPanelBytes);
      f.addTo(cTile, rowsBytes);
    });
    f.addTo(bPanel, bPanelBytes);
  });
  return f;
}

/**
 * rows(a, aStride, b, panelStride, depthStride, c, nc, kc, alpha, beta): one row of C, c[0:nc], from the row of
 * op(A) whose depth p is at a + p * aStride, and a block of op(B) whose element (p, j) is at
 * b + floor(j / TILE_COLS) * panelStride + p * depthStride + (j % TILE_COLS) * 4: packed panels, or row-major
 * rows read in place. nc is a multiple of TILE_COLS and kc >= 1.
 */
function rows(): FunctionBuilder {
  const f = new FunctionBuilder('rows', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32']);
  const a = f.param(0), aStride = f.param(1), b = f.param(2), panelStride = f.param(3), depthStride = f.param(4), c = f.param(5);
  const nc = f.param(6), kc = f.param(7), alphaScalar = f.param(8), betaScalar = f.param(9);
  const alpha = f.local('v128'), beta = f.local('v128'), betaZero = f.local('i32');
  const jr = f.local('i32'), p = f.local('i32'), ap = f.local('i32'), bPanel = f.local('i32'), cAt = f.local('i32');
  const groupEnd = f.local('i32');
  const bp = Array.from({ length: ROW_PANELS }, () => f.local('i32'));
  const acc = Array.from({ length: ROW_PANELS }, () => Array.from({ length: VECTORS }, () => f.local('v128')));
  const x = f.local('v128');

  f.get(alphaScalar).f32x4Splat().set(alpha);
  f.get(betaScalar).f32x4Splat().set(beta);
  f.get(betaScalar).f32Const(0).f32Eq().set(betaZero);
  f.get(b).set(bPanel);
  f.get(c).set(cAt);

  /** `panels` panels from bPanel on, into acc[0 .. panels). */
  const group = (panels: number): void => {
    for (let g = 0; g < panels; g++) {
      for (const v of acc[g]!) f.f32x4Const([-0, -0, -0, -0]).set(v);
      f.get(bPanel).get(panelStride).i32Const(g).i32Mul().i32Add().set(bp[g]!);
    }
    f.get(a).set(ap);
    f.forRange(p, 0, kc, 1, () => {
      f.get(ap).v128Load32Splat().set(x);
      f.addTo(ap, aStride);
      for (let g = 0; g < panels; g++) {
        for (let q = 0; q < VECTORS; q++) f.get(acc[g]![q]!).get(x).get(bp[g]!).v128Load(q * V128).f32x4Mul().f32x4Add().set(acc[g]![q]!);
        f.addTo(bp[g]!, depthStride);
      }
    });
    for (let g = 0; g < panels; g++) {
      for (let q = 0; q < VECTORS; q++) storeScaled(f, acc[g]![q]!, cAt, g * TILE_COLS * F32 + q * V128, alpha, beta, betaZero);
    }
    f.addTo(cAt, panels * TILE_COLS * F32);
    f.get(bPanel).get(panelStride).i32Const(panels).i32Mul().i32Add().set(bPanel);
  };

  f.get(nc).i32Const(ROW_PANELS * TILE_COLS - 1).i32Sub().set(groupEnd);
  f.forRange(jr, 0, groupEnd, ROW_PANELS * TILE_COLS, () => group(ROW_PANELS));
  f.get(nc).set(groupEnd);
  f.forRange(jr, jr, groupEnd, TILE_COLS, () => group(1));
  return f;
}

/** The module's bytes for a memory of `memoryPages` 64 KiB pages. */
export function sgemmModuleBytes(memoryPages: number): Uint8Array {
  return encodeModule({
    memoryPages,
    functions: [pack('packA', TILE_ROWS).finish(), pack('packB', TILE_COLS).finish(), tiles().finish(), rows().finish()],
  });
}
