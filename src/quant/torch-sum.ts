/**
 * torch.sum of a contiguous float32 vector on the CPU, bit for bit (aten/src/ATen/native/cpu/SumKernel.cpp,
 * `cascade_sum`): float32 accumulation in 8-lane vectors, four interleaved vector rows, each row a 4-level
 * cascade of chunks of 16, then the rows added, then the scalar tail, then the 8 lanes in order. Inputs shorter
 * than one vector take the same cascade with scalar lanes.
 *
 * 8 lanes is torch's AVX2 (and aarch64) build, which produced the bitsandbytes reference fixtures; a torch
 * running its AVX-512 kernels uses 16 lanes and can differ in the last bit.
 *
 * Exact while n < 32768 (torch's GRAIN_SIZE): above that torch splits the sum across its threads and the last
 * bit depends on torch.get_num_threads().
 */

const VECTOR_LANES = 8;
const ILP_ROWS = 4;
const LEVELS = 4;

/** ATen's utils::CeilLog2. */
function ceilLog2(x: number): number {
  if (x <= 2) return 1;
  return 32 - Math.clz32(x - 1);
}

/**
 * ATen's row_sum over `units` units of `lanes` consecutive floats (a unit is one vector, or one scalar when
 * lanes = 1): units are dealt round-robin to 4 rows (multi_row_sum), the leftover units go to row 0, and
 * rows 1..3 are added into row 0. Returns the lanes of row 0.
 */
function rowSum(values: Float32Array, lanes: number, units: number): Float32Array {
  const groups = Math.floor(units / ILP_ROWS);
  const levelPower = Math.max(4, Math.floor(ceilLog2(groups) / LEVELS));
  const levelStep = 2 ** levelPower;
  const levelMask = levelStep - 1;
  // acc[level][row] holds `lanes` float32 partial sums.
  const acc = Array.from({ length: LEVELS }, () => Array.from({ length: ILP_ROWS }, () => new Float32Array(lanes)));
  const addUnit = (target: Float32Array, unit: number): void => {
    const base = unit * lanes;
    for (let l = 0; l < lanes; l++) target[l] = target[l]! + values[base + l]!;
  };
  const addInto = (target: Float32Array, source: Float32Array): void => {
    for (let l = 0; l < lanes; l++) target[l] = target[l]! + source[l]!;
  };

  let g = 0;
  while (g + levelStep <= groups) {
    for (let j = 0; j < levelStep; j++, g++) {
      for (let row = 0; row < ILP_ROWS; row++) addUnit(acc[0]![row]!, g * ILP_ROWS + row);
    }
    for (let level = 1; level < LEVELS; level++) {
      for (let row = 0; row < ILP_ROWS; row++) {
        addInto(acc[level]![row]!, acc[level - 1]![row]!);
        acc[level - 1]![row]!.fill(0);
      }
      if ((g & (levelMask * 2 ** (level * levelPower))) !== 0) break;
    }
  }
  for (; g < groups; g++) {
    for (let row = 0; row < ILP_ROWS; row++) addUnit(acc[0]![row]!, g * ILP_ROWS + row);
  }
  for (let level = 1; level < LEVELS; level++) {
    for (let row = 0; row < ILP_ROWS; row++) addInto(acc[0]![row]!, acc[level]![row]!);
  }
  const total = acc[0]![0]!;
  for (let unit = groups * ILP_ROWS; unit < units; unit++) addUnit(total, unit);
  for (let row = 1; row < ILP_ROWS; row++) addInto(total, acc[0]![row]!);
  return total;
}

/** Float32 sum of `values` rounded exactly as torch's CPU `sum` rounds it (see the file comment). */
export function torchSumF32(values: Float32Array): number {
  const n = values.length;
  if (n < VECTOR_LANES) return rowSum(values, 1, n)[0]!;
  const vectors = Math.floor(n / VECTOR_LANES);
  const lanes = rowSum(values, VECTOR_LANES, vectors);
  let total = 0;
  for (let i = vectors * VECTOR_LANES; i < n; i++) total = Math.fround(total + values[i]!);
  for (let l = 0; l < VECTOR_LANES; l++) total = Math.fround(total + lanes[l]!);
  return total;
}

/** torch's CPU float32 `mean`: the sum above divided by the element count in float32. */
export function torchMeanF32(values: Float32Array): number {
  return Math.fround(torchSumF32(values) / Math.fround(values.length));
}
