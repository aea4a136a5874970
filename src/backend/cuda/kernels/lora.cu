// Multi-adapter LoRA for inference (Punica's BGMV): every row of a batch through the adapter it names, for up to
// LORA_MAX_OUTPUTS projections of the same x at once (q, k, v; gate, up), in one cooperative launch of two phases:
//
//   shrink:  part[o, row, s, t] = sum over c in split s of A[t, c] * x[row, c]   (A [rank, in] of the row's adapter
//            for output o; split s = features s * LORA_SPLIT .. (s + 1) * LORA_SPLIT - 1)
//   expand:  h[t] = sum over s, in order, of part[o, row, s, t]
//            out[row, j] = base[row, j] + scale * sum_t B[j, t] * h[t]   (B [out, rank]); = base at rank 0
//
// The host writes one RowLora per row and projection (a row without an adapter has rank 0 and null pointers).
// Splitting the features over tasks and the outputs over other tasks keeps a decode step's small products spread
// over the whole GPU with no block repeating another's work, and one launch instead of two halves the launches a
// decode step makes (a grid-wide barrier between the phases). Every task computes one row: its bits depend on its
// own x, base and adapter only, never on the other rows of the batch or on which block runs it, as on the CPU.
// Within a shrink task, thread i sums the features of its split c = 8i .. 8i + 7 (vector loads, eight ranks' A
// words loaded before any is used) or c = i, i + blockDim, ... (scalar); each rank's per-thread sums are reduced in
// a fixed lane order (warp butterfly) and warp order. Loads are specialised by dtype once per task (the switch
// sits outside the loops).

#define LORA_RANK_CHUNK 16
// Features per shrink task: eight per thread.
#define LORA_SPLIT 2048
// Outputs per expand task: four per thread.
#define LORA_OUTPUTS_PER_BLOCK 1024
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
// (LORA_OUTPUTS_BYTES). In the expand phase, output o owns blocks firstBlock[o] .. firstBlock[o + 1] - 1 of every
// row, one per LORA_OUTPUTS_PER_BLOCK of its features. part holds count * rows * splits * rankStride floats.
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

// One shrink task: row `row`, features of split `split`, every rank of output o's adapter for that row, into
// part[o, row, split, 0 .. rank - 1]. A row without an adapter has nothing to do.
__device__ __forceinline__ void lora_shrink_task(const LoraOutputs& g, const void* x, int xDt, i64 rows, i64 inFeatures, float* part, int splits,
                                                 int rankStride, int o, int split, i64 row, float (*partial)[LORA_RANK_CHUNK]) {
  const RowLora e = ((const RowLora*)g.table[o])[row];
  if (e.rank == 0) return;
  const i64 c0 = (i64)split * LORA_SPLIT;
  const i64 c1 = min_i64(c0 + LORA_SPLIT, inFeatures);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int warps = blockDim.x / 32;
  const void* a = (const void*)e.a;
  const bool vec = inFeatures % 8 == 0 && lora_aligned8(x, xDt, row * inFeatures) && lora_aligned8(a, e.aDt, 0);
  float* dst = part + ((o * rows + row) * splits + split) * (i64)rankStride;
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
#pragma unroll
    for (int i = 0; i < LORA_RANK_CHUNK; i++) {
      const float s = warp_sum(acc[i]);
      if (lane == 0) partial[warp][i] = s;
    }
    __syncthreads();
    if (threadIdx.x < n) {
      float s = 0.f;
      for (int w = 0; w < warps; w++) s += partial[w][threadIdx.x];
      dst[t0 + threadIdx.x] = s;
    }
    // partial is rewritten by the next chunk or task only after it has been read.
    __syncthreads();
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
  constexpr int PER_THREAD = LORA_OUTPUTS_PER_BLOCK / LORA_THREADS;
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

// One expand task: row `row`, outputs of block `block` (firstBlock numbering). The partial sums come from other
// blocks of this launch, so they are read past L1 (__ldcg).
__device__ __forceinline__ void lora_expand_task(const LoraOutputs& g, i64 rows, const float* part, int splits, int rankStride, int block, i64 row, float* h) {
  int o = 0;
  while (o + 1 < g.count && block >= g.firstBlock[o + 1]) o++;
  const RowLora e = ((const RowLora*)g.table[o])[row];
  const void* base = (const void*)g.base[o];
  void* out = (void*)g.out[o];
  const int baseDt = g.baseDt[o];
  const int outDt = g.outDt[o];
  const i64 outFeatures = g.outFeatures[o];
  const i64 j0 = (i64)(block - g.firstBlock[o]) * LORA_OUTPUTS_PER_BLOCK;
  const i64 j1 = min_i64(j0 + LORA_OUTPUTS_PER_BLOCK, outFeatures);
  if (e.rank == 0) {
    for (i64 j = j0 + threadIdx.x; j < j1; j += blockDim.x) store_f(out, outDt, row * outFeatures + j, load_f(base, baseDt, row * outFeatures + j));
    return;
  }
  const float* src = part + (o * rows + row) * splits * (i64)rankStride;
  for (int t = threadIdx.x; t < e.rank; t += blockDim.x) {
    float s = 0.f;
    for (int split = 0; split < splits; split++) s += __ldcg(src + split * (i64)rankStride + t);
    h[t] = s;
  }
  __syncthreads();
  if (e.bDt == DT_F32) lora_expand_row<DT_F32>(e, h, base, baseDt, out, outDt, row, j0, j1, outFeatures);
  else if (e.bDt == DT_BF16) lora_expand_row<DT_BF16>(e, h, base, baseDt, out, outDt, row, j0, j1, outFeatures);
  else lora_expand_row<DT_F16>(e, h, base, baseDt, out, outDt, row, j0, j1, outFeatures);
  // h is rewritten by the next task only after every thread has read it.
  __syncthreads();
}

// Every block of the grid waits here until all have arrived; their global writes before it are visible to all
// after it. Needs every block resident at once (a cooperative launch guarantees it) and is reached by all blocks.
// barrier[0] counts arrivals and is back at 0 when the last one leaves; barrier[1] is the generation the waiting
// blocks watch, read before arriving, so none can miss the last arrival's increment.
__device__ __forceinline__ void lora_grid_barrier(unsigned* barrier) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    volatile unsigned* generation = barrier + 1;
    const unsigned seen = *generation;
    __threadfence();
    if (atomicAdd(barrier, 1u) == gridDim.x - 1) {
      atomicExch(barrier, 0u);
      __threadfence();
      atomicAdd(barrier + 1, 1u);
    } else {
      while (*generation == seen) __nanosleep(32);
    }
    __threadfence();
  }
  __syncthreads();
}

// One cooperative launch per group of projections: first every shrink task (output, split, row), then a grid-wide
// barrier, then every expand task (output block, row), each phase spread over the resident blocks in task order.
// Without any adapter in the batch (rankStride 0) the expand phase alone copies base. Two blocks per SM (128
// registers a thread).
extern "C" __global__ void __launch_bounds__(LORA_THREADS, 2) multi_lora(const LoraOutputs g, const void* x, int xDt, i64 rows, i64 inFeatures, float* part,
                                                                      int splits, int rankStride, unsigned* barrier) {
  __shared__ float partial[32][LORA_RANK_CHUNK];
  __shared__ float h[LORA_MAX_RANK];
  if (rankStride > 0) {
    const i64 perRow = (i64)g.count * splits;
    for (i64 task = blockIdx.x; task < perRow * rows; task += gridDim.x) {
      const int rest = (int)(task % perRow);
      lora_shrink_task(g, x, xDt, rows, inFeatures, part, splits, rankStride, rest / splits, rest % splits, task / perRow, partial);
    }
    lora_grid_barrier(barrier);
  }
  const int blocks = g.firstBlock[g.count];
  for (i64 task = blockIdx.x; task < (i64)blocks * rows; task += gridDim.x) {
    lora_expand_task(g, rows, part, splits, rankStride, (int)(task % blocks), task / blocks, h);
  }
}
