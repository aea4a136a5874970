// Multi-adapter LoRA for inference (Punica's BGMV): every row of a batch through the adapter it names, for up to
// LORA_MAX_OUTPUTS projections of the same x at once (q, k, v; gate, up), in one launch:
//
//   shrink:  part[o, row, s, t] = sum over c in split s of A[t, c] * x[row, c]   (A [rank, in] of the row's adapter
//            for output o; split s = features s * LORA_SPLIT .. (s + 1) * LORA_SPLIT - 1)
//   expand:  h[t] = sum over s, in order, of part[o, row, s, t]
//            out[row, j] = base[row, j] + scale * sum_t B[j, t] * h[t]   (B [out, rank]); = base at rank 0
//
// No block ever waits for another, so the launch needs no co-residency and no barrier. With one split
// (inFeatures <= LORA_SPLIT) there is a block per row and LORA_OUTPUTS_PER_BLOCK outputs of a projection, which
// computes its row's h itself (from shared memory) and expands its outputs; the common 16-bit rank-8/16 case takes
// lora_fast, which overlaps the block's memory waits. With more splits there is a block per row, projection and
// split: each counts itself in (o, row)'s arrival counter after writing its partial sums, and the block that
// arrives last (whichever it is) sums the splits in order and expands the whole row. The host writes one RowLora
// per row and projection (a row without an adapter has rank 0 and null pointers). Every block computes one row:
// its bits depend on its own x, base and adapter only, never on the other rows of the batch, on which block
// arrives last, or on the path taken (lora_fast makes the same sums in the same order). Within the shrink, thread
// i sums the features of its split c = 8i .. 8i + 7 (vector loads, eight ranks' A words loaded before any is used)
// or c = i, i + blockDim, ... (scalar); each rank's per-thread sums are reduced in a fixed lane order (warp
// butterfly) and warp order. Loads are specialised by dtype once per block (the switch sits outside the loops).

#define LORA_RANK_CHUNK 16
// Features per split: eight per thread.
#define LORA_SPLIT 2048
// Outputs per pass of the expand: four per thread.
#define LORA_PASS_OUTPUTS 1024
// Outputs per block when the input fits one feature split (at most LORA_FAST_PASSES passes).
#define LORA_FAST_PASSES 4
#define LORA_OUTPUTS_PER_BLOCK (LORA_FAST_PASSES * LORA_PASS_OUTPUTS)
// Threads per block (CudaBackend.multiLora launches this many).
#define LORA_THREADS 256
// Ranks h holds in shared memory at most (CudaBackend.multiLora checks it).
#define LORA_MAX_RANK 1024

// 32 bytes, little-endian; written by CudaBackend.multiLora (ROW_LORA_BYTES).
struct RowLora {
  u64 a;
  u64 b;
  float scale;
  int rank;
  int aDt;
  int bDt;
};

// The projections of one launch (MultiLoraArgs.outputs), by value; written by CudaBackend.multiLora
// (LORA_OUTPUTS_BYTES). With one feature split, output o owns blocks firstBlock[o] .. firstBlock[o + 1] - 1 of
// every row, one per LORA_OUTPUTS_PER_BLOCK of its features. part holds count * rows * splits * rankStride floats
// when splits > 1.
#define LORA_MAX_OUTPUTS 4
struct LoraOutputs {
  u64 table[LORA_MAX_OUTPUTS];
  u64 base[LORA_MAX_OUTPUTS];
  u64 out[LORA_MAX_OUTPUTS];
  i64 outFeatures[LORA_MAX_OUTPUTS];
  int firstBlock[LORA_MAX_OUTPUTS + 1];
  int baseDt[LORA_MAX_OUTPUTS];
  int outDt[LORA_MAX_OUTPUTS];
  int count;
};
// The host writes LoraOutputs and RowLora byte by byte (CudaBackend.multiLora): no padding inside either.
static_assert(sizeof(LoraOutputs) == 184, "LoraOutputs size");
static_assert(sizeof(RowLora) == 32, "RowLora size");

template <int DT> __device__ __forceinline__ float lora_load(const void* p, i64 i);
template <> __device__ __forceinline__ float lora_load<DT_F32>(const void* p, i64 i) { return ((const float*)p)[i]; }
template <> __device__ __forceinline__ float lora_load<DT_BF16>(const void* p, i64 i) { return bf16_to_f32(((const u16*)p)[i]); }
template <> __device__ __forceinline__ float lora_load<DT_F16>(const void* p, i64 i) { return f16_to_f32(((const u16*)p)[i]); }

// Whether element i of a buffer of dtype dt starts a 16-byte aligned group of eight.
__device__ __forceinline__ bool lora_aligned8(const void* p, int dt, i64 i) {
  const u64 bytes = dt == DT_F32 ? 4 : 2;
  return (((u64)p + (u64)i * bytes) & 15) == 0;
}

// This thread's sums for ranks t0 .. t0 + n - 1 over features c0 + 8 * threadIdx.x .. + 7 (c0 + 8 * threadIdx.x <
// c1; inFeatures a multiple of 8, x's row and A 16-byte aligned): the A words of eight ranks at a time are loaded
// before any is used (sixteen would hold more registers than two blocks per SM leave).
template <int XT, int AT>
__device__ __forceinline__ void lora_shrink_sums8(const void* a, const void* x, i64 row, i64 inFeatures, i64 c0, i64 c1, int t0, int n, float* acc) {
  constexpr int GROUP = LORA_RANK_CHUNK / 2;
  const i64 c = c0 + 8 * (i64)threadIdx.x;
  if (c >= c1) return;
  float xv[8];
  unpack8(raw8(x, XT, (row * inFeatures + c) / 8), XT, xv);
#pragma unroll
  for (int i0 = 0; i0 < LORA_RANK_CHUNK; i0 += GROUP) {
    Raw8 araw[GROUP];
#pragma unroll
    for (int i = 0; i < GROUP; i++) {
      if (i0 + i < n) araw[i] = raw8(a, AT, ((t0 + i0 + i) * inFeatures + c) / 8);
    }
#pragma unroll
    for (int i = 0; i < GROUP; i++) {
      if (i0 + i < n) {
        float av[8];
        unpack8(araw[i], AT, av);
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < 8; k++) s += av[k] * xv[k];
        acc[i0 + i] += s;
      }
    }
  }
}

// The scalar variant: features c0 + threadIdx.x, c0 + threadIdx.x + blockDim.x, ... below c1.
template <int XT, int AT>
__device__ __forceinline__ void lora_shrink_sums(const void* a, const void* x, i64 row, i64 inFeatures, i64 c0, i64 c1, int t0, int n, float* acc) {
  for (i64 c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
    const float xv = lora_load<XT>(x, row * inFeatures + c);
#pragma unroll
    for (int i = 0; i < LORA_RANK_CHUNK; i++) {
      if (i < n) acc[i] += lora_load<AT>(a, (t0 + i) * inFeatures + c) * xv;
    }
  }
}

#define LORA_SHRINK_CASE(XT, AT) \
  case (XT) * 3 + (AT):                                                                  \
    if (vec) lora_shrink_sums8<XT, AT>(a, x, row, inFeatures, c0, c1, t0, n, acc);       \
    else lora_shrink_sums<XT, AT>(a, x, row, inFeatures, c0, c1, t0, n, acc);            \
    break;

// dst[i] = the block's sum of acc[i] over its threads, for i < n: each in a fixed lane order (warp butterfly), then
// warp order. Ends with the block synchronised (dst and partial may be reused).
__device__ __forceinline__ void lora_reduce_ranks(const float* acc, int n, float* dst, float (*partial)[LORA_RANK_CHUNK]) {
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < LORA_RANK_CHUNK; i++) {
    const float s = warp_sum(acc[i]);
    if (lane == 0) partial[warp][i] = s;
  }
  __syncthreads();
  if (threadIdx.x < n) {
    float s = 0.f;
    for (int w = 0; w < (int)blockDim.x / 32; w++) s += partial[w][threadIdx.x];
    dst[threadIdx.x] = s;
  }
  __syncthreads();
}

// The shrink of row `row`, features of split `split`, every rank of the row's adapter e, into dst[0 .. rank - 1].
__device__ __forceinline__ void lora_shrink(const RowLora& e, const void* x, int xDt, i64 inFeatures, int split, i64 row, float* dst,
                                            float (*partial)[LORA_RANK_CHUNK]) {
  const i64 c0 = (i64)split * LORA_SPLIT;
  const i64 c1 = min_i64(c0 + LORA_SPLIT, inFeatures);
  const void* a = (const void*)e.a;
  const bool vec = inFeatures % 8 == 0 && lora_aligned8(x, xDt, row * inFeatures) && lora_aligned8(a, e.aDt, 0);
  for (int t0 = 0; t0 < e.rank; t0 += LORA_RANK_CHUNK) {
    const int n = min(LORA_RANK_CHUNK, e.rank - t0);
    float acc[LORA_RANK_CHUNK];
#pragma unroll
    for (int i = 0; i < LORA_RANK_CHUNK; i++) acc[i] = 0.f;
    switch (xDt * 3 + e.aDt) {
      LORA_SHRINK_CASE(DT_F32, DT_F32)
      LORA_SHRINK_CASE(DT_F32, DT_BF16)
      LORA_SHRINK_CASE(DT_F32, DT_F16)
      LORA_SHRINK_CASE(DT_BF16, DT_F32)
      LORA_SHRINK_CASE(DT_BF16, DT_BF16)
      LORA_SHRINK_CASE(DT_BF16, DT_F16)
      LORA_SHRINK_CASE(DT_F16, DT_F32)
      LORA_SHRINK_CASE(DT_F16, DT_BF16)
      LORA_SHRINK_CASE(DT_F16, DT_F16)
    }
    lora_reduce_ranks(acc, n, dst + t0, partial);
  }
}

// Each output sums its rank terms in order; with a rank that is a multiple of 8 and B 16-byte aligned (so every
// row of B is), eight at a time through vector loads, in the same order. A thread's outputs are LORA_THREADS
// apart; the loads of all of them are issued before the sums.
template <int BT>
__device__ __forceinline__ void lora_expand_row(const RowLora& e, const float* h, const void* base, int baseDt, void* out, int outDt, i64 row, i64 j0, i64 j1,
                                                i64 outFeatures) {
  const void* b = (const void*)e.b;
  const bool vec = e.rank % 8 == 0 && lora_aligned8(b, BT, 0);
  constexpr int PER_THREAD = LORA_PASS_OUTPUTS / LORA_THREADS;
  float acc[PER_THREAD];
  float y[PER_THREAD];
#pragma unroll
  for (int u = 0; u < PER_THREAD; u++) {
    const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
    acc[u] = 0.f;
    y[u] = j < j1 ? load_f(base, baseDt, row * outFeatures + j) : 0.f;
  }
  if (vec) {
    for (int t = 0; t < e.rank; t += 8) {
      Raw8 braw[PER_THREAD];
#pragma unroll
      for (int u = 0; u < PER_THREAD; u++) {
        const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
        if (j < j1) braw[u] = raw8(b, BT, (j * e.rank + t) / 8);
      }
#pragma unroll
      for (int u = 0; u < PER_THREAD; u++) {
        const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
        if (j < j1) {
          float bv[8];
          unpack8(braw[u], BT, bv);
#pragma unroll
          for (int k = 0; k < 8; k++) acc[u] += bv[k] * h[t + k];
        }
      }
    }
  } else {
#pragma unroll
    for (int u = 0; u < PER_THREAD; u++) {
      const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
      if (j < j1) {
        for (int t = 0; t < e.rank; t++) acc[u] += lora_load<BT>(b, j * e.rank + t) * h[t];
      }
    }
  }
#pragma unroll
  for (int u = 0; u < PER_THREAD; u++) {
    const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
    if (j < j1) store_f(out, outDt, row * outFeatures + j, y[u] + e.scale * acc[u]);
  }
}

// The expand of row `row` of one output through adapter e, h in shared memory: outputs j0 .. j1 - 1,
// LORA_PASS_OUTPUTS at a time. Not inlined: both paths of multi_lora call this one copy (scalars, not the
// parameter struct, so nothing is copied to local memory).
__device__ __noinline__ void lora_expand(const RowLora e, const float* h, const void* base, int baseDt, void* out, int outDt, i64 outFeatures, i64 row,
                                         i64 j0, i64 j1) {
  for (; j0 < j1; j0 += LORA_PASS_OUTPUTS) {
    const i64 end = min_i64(j0 + LORA_PASS_OUTPUTS, j1);
    if (e.bDt == DT_F32) lora_expand_row<DT_F32>(e, h, base, baseDt, out, outDt, row, j0, end, outFeatures);
    else if (e.bDt == DT_BF16) lora_expand_row<DT_BF16>(e, h, base, baseDt, out, outDt, row, j0, end, outFeatures);
    else lora_expand_row<DT_F16>(e, h, base, baseDt, out, outDt, row, j0, end, outFeatures);
  }
}

// This thread's B words (rank 8 or 16: one or two groups of eight) and base values for the pass of a fast block
// that covers outputs j0 .. j1 - 1.
template <int T>
__device__ __forceinline__ void lora_fast_pass_loads(const void* b, int rank, const void* base, int baseDt, i64 row, i64 outFeatures, i64 j0, i64 j1,
                                                     Raw8 (*braw)[2], float* y) {
#pragma unroll
  for (int u = 0; u < LORA_PASS_OUTPUTS / LORA_THREADS; u++) {
    const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
    if (j < j1) {
      braw[u][0] = raw8(b, T, j * rank / 8);
      if (rank == 16) braw[u][1] = raw8(b, T, (j * rank + 8) / 8);
      y[u] = load_f(base, baseDt, row * outFeatures + j);
    }
  }
}

// out = y + scale * B h for this thread's outputs of the pass starting at j0 (rank terms in order, as lora_expand_row).
template <int T>
__device__ __forceinline__ void lora_fast_pass(Raw8 (*braw)[2], const float* y, int rank, float scale, const float* h, void* out, int outDt, i64 row,
                                               i64 outFeatures, i64 j0, i64 j1) {
#pragma unroll
  for (int u = 0; u < LORA_PASS_OUTPUTS / LORA_THREADS; u++) {
    const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
    if (j < j1) {
      float s = 0.f;
#pragma unroll
      for (int half = 0; half < 2; half++) {
        if (half == 1 && rank != 16) break;
        float bv[8];
        unpack8(braw[u][half], T, bv);
#pragma unroll
        for (int k = 0; k < 8; k++) s += bv[k] * h[8 * half + k];
      }
      store_f(out, outDt, row * outFeatures + j, y[u] + scale * s);
    }
  }
}

// The common serving case for one block of outputs j0 .. j1 - 1 (at most LORA_OUTPUTS_PER_BLOCK) of a row: one
// feature split, x, A and B all 16-bit of dtype T, rank 8 or 16, rows 16-byte aligned. The same sums in the same
// order as lora_shrink then lora_expand_row (so the same bits), with the memory waits overlapped: the caller
// loaded this thread's x words (xr) and first-pass base values (y0) while the row's RowLora was on its way, and the
// B words of the first pass are loaded together with A's first eight ranks; each later pass (blocks of more than
// LORA_PASS_OUTPUTS outputs) loads its own. A block waits for memory three times, plus once per later pass.
template <int T>
__device__ __forceinline__ void lora_fast(const RowLora& e, const Raw8& xr, bool live, i64 inFeatures, i64 c, const float* y0, const void* base, int baseDt,
                                          void* out, int outDt, i64 row, i64 j0, i64 j1, i64 outFeatures, float* h, float (*partial)[LORA_RANK_CHUNK]) {
  constexpr int PER_THREAD = LORA_PASS_OUTPUTS / LORA_THREADS;
  const void* a = (const void*)e.a;
  const void* b = (const void*)e.b;
  const int rank = e.rank;
  Raw8 araw[8];
  Raw8 braw[PER_THREAD][2];
  float y[PER_THREAD];
  if (live) {
#pragma unroll
    for (int i = 0; i < 8; i++) araw[i] = raw8(a, T, (i * inFeatures + c) / 8);
  }
#pragma unroll
  for (int u = 0; u < PER_THREAD; u++) {
    const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
    y[u] = y0[u];
    if (j < j1) {
      braw[u][0] = raw8(b, T, j * rank / 8);
      if (rank == 16) braw[u][1] = raw8(b, T, (j * rank + 8) / 8);
    }
  }
  float acc[LORA_RANK_CHUNK];
#pragma unroll
  for (int i = 0; i < LORA_RANK_CHUNK; i++) acc[i] = 0.f;
  if (live) {
    float xv[8];
    unpack8(xr, T, xv);
#pragma unroll
    for (int half = 0; half < 2; half++) {
      if (half == 1) {
        if (rank != 16) break;
#pragma unroll
        for (int i = 0; i < 8; i++) araw[i] = raw8(a, T, ((8 + i) * inFeatures + c) / 8);
      }
#pragma unroll
      for (int i = 0; i < 8; i++) {
        float av[8];
        unpack8(araw[i], T, av);
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < 8; k++) s += av[k] * xv[k];
        acc[8 * half + i] += s;
      }
    }
  }
  lora_reduce_ranks(acc, rank, h, partial);
  for (i64 p0 = j0; p0 < j1; p0 += LORA_PASS_OUTPUTS) {
    if (p0 > j0) lora_fast_pass_loads<T>(b, rank, base, baseDt, row, outFeatures, p0, j1, braw, y);
    lora_fast_pass<T>(braw, y, rank, e.scale, h, out, outDt, row, outFeatures, p0, min_i64(p0 + LORA_PASS_OUTPUTS, j1));
  }
}

// Grid: with one feature split, x = row * firstBlock[count] + block (block: firstBlock numbering, one per
// LORA_OUTPUTS_PER_BLOCK outputs; each block computes its row's h itself, so none depends on another); with more,
// x = (row * count + o) * splits + split, and arrivals holds one zero counter per (o, row) that the last block of
// the row puts back to zero for the next launch. Two blocks per SM (128 registers a thread).
extern "C" __global__ void __launch_bounds__(LORA_THREADS, 2) multi_lora(const LoraOutputs g, const void* x, int xDt, i64 rows, i64 inFeatures, float* part,
                                                                      int splits, int rankStride, int* arrivals) {
  __shared__ float partial[32][LORA_RANK_CHUNK];
  __shared__ float h[LORA_MAX_RANK];
  __shared__ bool last;
  if (splits == 1) {
    constexpr int PER_THREAD = LORA_PASS_OUTPUTS / LORA_THREADS;
    const int perRow = g.firstBlock[g.count];
    const i64 row = blockIdx.x / perRow;
    const int block = (int)(blockIdx.x % perRow);
    int o = 0;
    while (o + 1 < g.count && block >= g.firstBlock[o + 1]) o++;
    const void* base = (const void*)g.base[o];
    void* out = (void*)g.out[o];
    const int baseDt = g.baseDt[o];
    const int outDt = g.outDt[o];
    const i64 outFeatures = g.outFeatures[o];
    const i64 j0 = (i64)(block - g.firstBlock[o]) * LORA_OUTPUTS_PER_BLOCK;
    const i64 j1 = min_i64(j0 + LORA_OUTPUTS_PER_BLOCK, outFeatures);
    // Loaded before the row's RowLora is used: none of these depend on it (y: the first pass's base values).
    float y[PER_THREAD];
#pragma unroll
    for (int u = 0; u < PER_THREAD; u++) {
      const i64 j = j0 + threadIdx.x + (i64)u * LORA_THREADS;
      y[u] = j < j1 ? load_f(base, baseDt, row * outFeatures + j) : 0.f;
    }
    const i64 c = 8 * (i64)threadIdx.x;
    const bool xvec = (xDt == DT_BF16 || xDt == DT_F16) && inFeatures % 8 == 0 && lora_aligned8(x, xDt, row * inFeatures);
    const bool live = c < inFeatures;
    Raw8 xr;
    if (xvec && live) xr = raw8(x, xDt, (row * inFeatures + c) / 8);
    const RowLora e = ((const RowLora*)g.table[o])[row];
    if (e.rank == 0) {
      for (i64 j = j0 + threadIdx.x; j < j1; j += blockDim.x) store_f(out, outDt, row * outFeatures + j, load_f(base, baseDt, row * outFeatures + j));
      return;
    }
    if (xvec && (e.rank == 8 || e.rank == 16) && e.aDt == xDt && e.bDt == xDt && lora_aligned8((const void*)e.a, xDt, 0) && lora_aligned8((const void*)e.b, xDt, 0)) {
      if (xDt == DT_BF16) lora_fast<DT_BF16>(e, xr, live, inFeatures, c, y, base, baseDt, out, outDt, row, j0, j1, outFeatures, h, partial);
      else lora_fast<DT_F16>(e, xr, live, inFeatures, c, y, base, baseDt, out, outDt, row, j0, j1, outFeatures, h, partial);
      return;
    }
    lora_shrink(e, x, xDt, inFeatures, 0, row, h, partial);
    lora_expand(e, h, base, baseDt, out, outDt, outFeatures, row, j0, j1);
    return;
  }
  const int split = (int)(blockIdx.x % splits);
  const i64 rest = blockIdx.x / splits;
  const int o = (int)(rest % g.count);
  const i64 row = rest / g.count;
  const RowLora e = ((const RowLora*)g.table[o])[row];
  const void* base = (const void*)g.base[o];
  void* out = (void*)g.out[o];
  const i64 outFeatures = g.outFeatures[o];
  if (e.rank == 0) {
    if (split != 0) return;
    for (i64 j = threadIdx.x; j < outFeatures; j += blockDim.x) store_f(out, g.outDt[o], row * outFeatures + j, load_f(base, g.baseDt[o], row * outFeatures + j));
    return;
  }
  float* mine = part + (o * rows + row) * splits * (i64)rankStride;
  lora_shrink(e, x, xDt, inFeatures, split, row, mine + split * (i64)rankStride, partial);
  // Every thread's partial sums are visible device-wide before the block counts itself in.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* counter = arrivals + o * rows + row;
    last = atomicAdd(counter, 1) == splits - 1;
    if (last) *counter = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // The other splits' sums come from other blocks: read past L1.
  for (int t = threadIdx.x; t < e.rank; t += blockDim.x) {
    float s = 0.f;
    for (int sp = 0; sp < splits; sp++) s += __ldcg(mine + sp * (i64)rankStride + t);
    h[t] = s;
  }
  __syncthreads();
  lora_expand(e, h, base, g.baseDt[o], out, g.outDt[o], outFeatures, row, 0, outFeatures);
}
