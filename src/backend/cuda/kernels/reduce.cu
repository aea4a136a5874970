// Reductions over the middle axis of x viewed as [outer, axis, inner]:
//
//   sum: out[o, i] = sum_a x[o, a, i]      max: out[o, i] = max_a x[o, a, i]  (NaN propagates, as Math.max)
//
// Sums accumulate in float64, as the CPU reference does, so long reductions (bias and norm-weight gradients
// over many rows) agree with it to float32 rounding. The backward of sum is a broadcast and the backward of max
// a mask, both composed in ops/ from elementwise kernels.

#define R_SUM 0
#define R_MAX 1

// inner == 1: one block per row of `axis` contiguous elements.
extern "C" __global__ void reduce_rows(int op, const void* x, int xDt, void* out, int outDt, i64 outer, i64 axis) {
  __shared__ double scratch[32];
  for (i64 o = blockIdx.x; o < outer; o += gridDim.x) {
    const i64 base = o * axis;
    if (op == R_SUM) {
      double acc = 0.0;
      for (i64 a = threadIdx.x; a < axis; a += blockDim.x) acc += (double)load_f(x, xDt, base + a);
      acc = block_sum(acc, scratch);
      if (threadIdx.x == 0) store_f(out, outDt, o, (float)acc);
    } else {
      float acc = -F32_INF;
      for (i64 a = threadIdx.x; a < axis; a += blockDim.x) acc = max_nan(acc, load_f(x, xDt, base + a));
      acc = block_max(acc, (float*)scratch);
      if (threadIdx.x == 0) store_f(out, outDt, o, acc);
    }
  }
}

// inner > 1: blocks of 32 x 8 threads; threadIdx.x walks 32 adjacent columns (coalesced), threadIdx.y splits
// the axis eight ways, and shared memory combines the eight partial results. Blocks cover (outer, column tile)
// pairs in order.
extern "C" __global__ void reduce_cols(int op, const void* x, int xDt, void* out, int outDt, i64 outer, i64 axis, i64 inner) {
  __shared__ double part[8][33];
  const i64 tiles = (inner + 31) / 32;
  for (i64 t = blockIdx.x; t < outer * tiles; t += gridDim.x) {
    const i64 o = t / tiles;
    const i64 col = (t - o * tiles) * 32 + threadIdx.x;
    const bool active = col < inner;
    double acc = op == R_SUM ? 0.0 : -(double)F32_INF;
    if (active) {
      for (i64 a = threadIdx.y; a < axis; a += blockDim.y) {
        float v = load_f(x, xDt, (o * axis + a) * inner + col);
        if (op == R_SUM) acc += (double)v;
        else acc = (double)max_nan((float)acc, v);
      }
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && active) {
      for (int y = 1; y < blockDim.y; ++y) {
        double v = part[y][threadIdx.x];
        if (op == R_SUM) acc += v;
        else acc = (double)max_nan((float)acc, (float)v);
      }
      store_f(out, outDt, o * inner + col, (float)acc);
    }
    __syncthreads();
  }
}

// Row-wise argmax, one block per row of `cols` contiguous elements; out is int32 [rows]. Returns what the host's
// greedy scan (best = 0; for i >= 1: if x[i] > x[best] then best = i) returns: the lowest index of the row's
// maximum, NaNs skipped (they compare false), except that a row whose first element is NaN gives 0; a row of
// -inf gives 0, and so does an empty row. Each thread keeps its best (value, index) with NaNs skipped; merging
// keeps the larger value, the lower index on equal values (+0 and -0 are equal), an order in which the identity
// (-inf, cols) loses to every real candidate.
struct ArgBest {
  float v;
  i64 i;
};

__device__ __forceinline__ ArgBest argbest_merge(ArgBest a, ArgBest b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

__device__ __forceinline__ ArgBest warp_argbest(ArgBest v) {
  for (int o = 16; o > 0; o >>= 1) {
    ArgBest other{__shfl_xor_sync(0xffffffffu, v.v, o), __shfl_xor_sync(0xffffffffu, v.i, o)};
    v = argbest_merge(v, other);
  }
  return v;
}

extern "C" __global__ void argmax_rows(const void* x, int xDt, int* out, i64 rows, i64 cols) {
  __shared__ float sv[32];
  __shared__ i64 si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const i64 base = r * cols;
    ArgBest best{-F32_INF, cols};
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      const float v = load_f(x, xDt, base + c);
      // c grows, so an equal value only replaces the identity; a NaN never passes either test.
      if (v > best.v || (v == best.v && c < best.i)) best = ArgBest{v, c};
    }
    best = warp_argbest(best);
    if (lane == 0) {
      sv[warp] = best.v;
      si[warp] = best.i;
    }
    __syncthreads();
    if (warp == 0) {
      best = lane < warps ? ArgBest{sv[lane], si[lane]} : ArgBest{-F32_INF, cols};
      best = warp_argbest(best);
      if (lane == 0) out[r] = (cols == 0 || is_nan(load_f(x, xDt, base))) ? 0 : (int)best.i;
    }
    __syncthreads();
  }
}
