// Shared by every kernel family (prepended to each .cu file before NVRTC compiles it; no system headers).
//
// Storage: buffers are untyped; a dtype code chosen by the host says how to read and write each element.
// Floating values are computed in float32 (float64 where the CPU reference computes in float64 and the cost
// is hidden behind memory traffic). bfloat16 and float16 stores round to nearest even, as the CPU does.
// Every kernel is compiled with --fmad=false, so a*b+c rounds twice exactly as the CPU's Math.fround does.

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

// Must match DTYPE_CODES in kernels.ts.
#define DT_F32 0
#define DT_BF16 1
#define DT_F16 2
#define DT_I32 3
#define DT_I64 4
#define DT_U8 5

#define F32_INF __int_as_float(0x7f800000)
#define F32_NAN __int_as_float(0x7fc00000)

// Error codes written to the host-visible status word (see CudaRuntime.checkStatus).
#define STATUS_EMBEDDING_ID 1
#define STATUS_LABEL 2

__device__ __forceinline__ float bf16_to_f32(u16 b) { return __uint_as_float(((u32)b) << 16); }

// Round to nearest even; a NaN stays a quiet NaN (the CPU's f32ToBf16Bits).
__device__ __forceinline__ u16 f32_to_bf16(float f) {
  u32 u = __float_as_uint(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0u) return (u16)(((u >> 16) | 0x40u) & 0xffffu);
  return (u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float f16_to_f32(u16 h) {
  float f;
  asm("{ .reg .b16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
  u16 h;
  asm("{ .reg .b16 t; cvt.rn.f16.f32 t, %1; mov.b16 %0, t; }" : "=h"(h) : "f"(f));
  return h;
}

__device__ __forceinline__ float load_f(const void* p, int dt, i64 i) {
  switch (dt) {
    case DT_F32: return ((const float*)p)[i];
    case DT_BF16: return bf16_to_f32(((const u16*)p)[i]);
    case DT_F16: return f16_to_f32(((const u16*)p)[i]);
    case DT_I32: return (float)((const int*)p)[i];
    case DT_I64: return (float)(double)((const i64*)p)[i];
    default: return (float)((const unsigned char*)p)[i];
  }
}

// Integer stores truncate toward zero (the CPU's Math.trunc); uint8 wraps modulo 256.
__device__ __forceinline__ void store_f(void* p, int dt, i64 i, float v) {
  switch (dt) {
    case DT_F32: ((float*)p)[i] = v; break;
    case DT_BF16: ((u16*)p)[i] = f32_to_bf16(v); break;
    case DT_F16: ((u16*)p)[i] = f32_to_f16(v); break;
    case DT_I32: ((int*)p)[i] = (int)v; break;
    case DT_I64: ((i64*)p)[i] = (i64)v; break;
    default: ((unsigned char*)p)[i] = (unsigned char)(i64)v; break;
  }
}

// Conversions between dtypes go through float64, as the CPU's element getters and setters do (so int32 and
// int64 values survive exactly); float stores round to float32 first, then to the narrow type.
__device__ __forceinline__ double load_d(const void* p, int dt, i64 i) {
  switch (dt) {
    case DT_F32: return (double)((const float*)p)[i];
    case DT_BF16: return (double)bf16_to_f32(((const u16*)p)[i]);
    case DT_F16: return (double)f16_to_f32(((const u16*)p)[i]);
    case DT_I32: return (double)((const int*)p)[i];
    case DT_I64: return (double)((const i64*)p)[i];
    default: return (double)((const unsigned char*)p)[i];
  }
}

__device__ __forceinline__ void store_d(void* p, int dt, i64 i, double v) {
  switch (dt) {
    case DT_F32: ((float*)p)[i] = (float)v; break;
    case DT_BF16: ((u16*)p)[i] = f32_to_bf16((float)v); break;
    case DT_F16: ((u16*)p)[i] = f32_to_f16((float)v); break;
    case DT_I32: ((int*)p)[i] = (int)(i64)v; break;
    case DT_I64: ((i64*)p)[i] = (i64)v; break;
    default: ((unsigned char*)p)[i] = (unsigned char)(i64)v; break;
  }
}

// Integer ids and labels (int32 or int64 storage).
__device__ __forceinline__ i64 load_index(const void* p, int dt, i64 i) {
  return dt == DT_I64 ? ((const i64*)p)[i] : (i64)((const int*)p)[i];
}

// Eight 16-bit floats (bfloat16, or float16 when !bf16) packed in 16 bytes, widened in order.
__device__ __forceinline__ void unpack_16x8(uint4 v, bool bf16, float* f) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const u16 h = (u16)((w[j / 2] >> (16 * (j % 2))) & 0xffffu);
    f[j] = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

// Eight contiguous elements of a float32, bfloat16 or float16 array starting at element 8g (16-byte aligned), as
// raw words: one for 16-bit types (hi unused), two for float32. Loading the words of several groups before
// unpacking any keeps their loads in flight together.
struct Raw8 {
  uint4 lo;
  uint4 hi;
};

__device__ __forceinline__ Raw8 raw8(const void* p, int dt, i64 g) {
  Raw8 r;
  if (dt == DT_BF16 || dt == DT_F16) {
    r.lo = ((const uint4*)p)[g];
    r.hi = make_uint4(0, 0, 0, 0);
  } else {
    r.lo = ((const uint4*)p)[2 * g];
    r.hi = ((const uint4*)p)[2 * g + 1];
  }
  return r;
}

__device__ __forceinline__ void unpack8(const Raw8& r, int dt, float* f) {
  if (dt == DT_BF16 || dt == DT_F16) {
    unpack_16x8(r.lo, dt == DT_BF16, f);
  } else {
    f[0] = __uint_as_float(r.lo.x); f[1] = __uint_as_float(r.lo.y); f[2] = __uint_as_float(r.lo.z); f[3] = __uint_as_float(r.lo.w);
    f[4] = __uint_as_float(r.hi.x); f[5] = __uint_as_float(r.hi.y); f[6] = __uint_as_float(r.hi.z); f[7] = __uint_as_float(r.hi.w);
  }
}

// Loads 8 contiguous elements of a float32, bfloat16 or float16 array starting at element 8g (16-byte aligned).
__device__ __forceinline__ void load8(const void* p, int dt, i64 g, float* f) { unpack8(raw8(p, dt, g), dt, f); }

__device__ __forceinline__ bool is_nan(float x) { return x != x; }

__device__ __forceinline__ i64 min_i64(i64 a, i64 b) { return a < b ? a : b; }

// max that propagates NaN, like JavaScript's Math.max.
__device__ __forceinline__ float max_nan(float a, float b) { return (is_nan(a) || is_nan(b)) ? F32_NAN : fmaxf(a, b); }

// First error wins; plain stores because the word lives in mapped host memory, where atomics may not reach.
__device__ __forceinline__ void report_status(volatile int* status, int code, int a, int b, int c) {
  if (status[0] == 0) {
    status[1] = a;
    status[2] = b;
    status[3] = c;
    __threadfence_system();
    status[0] = code;
  }
}

#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) ----

// Butterfly reductions over a warp: every lane receives the result, combined in the same fixed lane order.
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

struct WarpSum {
  template <typename T> __device__ __forceinline__ T operator()(T v) const { return warp_sum(v); }
};
struct WarpMax {
  __device__ __forceinline__ float operator()(float v) const { return warp_max(v); }
};

// Every thread receives the block's reduction (warps in order, then across warps; `identity` fills the lanes
// past the last warp). `scratch` holds 32 values; the call ends with a barrier so the scratch can be reused at once.
template <typename T, typename WarpOp> __device__ __forceinline__ T block_reduce(T v, T* scratch, T identity, WarpOp op) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = op(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : identity;
  v = op(v);
  __syncthreads();
  return v;
}

template <typename T> __device__ __forceinline__ T block_sum(T v, T* scratch) { return block_reduce(v, scratch, (T)0, WarpSum()); }

__device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce(v, scratch, -F32_INF, WarpMax()); }

// Online log-sum-exp state: the running max m and sum s of exp(x - m). Merging two states rescales the one
// with the smaller max; an all -inf state (m = -inf, s = 0) is the identity.
struct MaxSum {
  float m;
  float s;
};

__device__ __forceinline__ MaxSum maxsum_merge(MaxSum a, MaxSum b) {
  if (is_nan(a.m) || is_nan(b.m)) return MaxSum{F32_NAN, F32_NAN};
  if (a.m == -F32_INF) return b;
  if (b.m == -F32_INF) return a;
  float m = fmaxf(a.m, b.m);
  return MaxSum{m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

// One exp per element: rescale the sum only when the max moves.
__device__ __forceinline__ MaxSum maxsum_add(MaxSum a, float x) {
  if (is_nan(x) || is_nan(a.m)) return MaxSum{F32_NAN, F32_NAN};
  if (x == -F32_INF) return a;
  if (x > a.m) {
    a.s = a.s * expf(a.m - x) + 1.0f;
    a.m = x;
  } else {
    a.s += expf(x - a.m);
  }
  return a;
}

__device__ __forceinline__ MaxSum block_maxsum(MaxSum v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = maxsum_merge(v, other);
  }
  if (lane == 0) {
    scratch[warp] = v.m;
    scratch[32 + warp] = v.s;
  }
  __syncthreads();
  v = lane < warps ? MaxSum{scratch[lane], scratch[32 + lane]} : MaxSum{-F32_INF, 0.0f};
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = maxsum_merge(v, other);
  }
  __syncthreads();
  return v;
}

// ---- strided views (rank <= 8), for copy and broadcasting binary ops ----

#define MAX_RANK 8

// Element offsets of operand a and b for each index of `shape` (row-major); unused trailing dims are 1.
struct Strided2 {
  i64 shape[MAX_RANK];
  i64 a[MAX_RANK];
  i64 b[MAX_RANK];
  int rank;
};

__device__ __forceinline__ void strided_offsets(const Strided2& L, i64 i, i64& oa, i64& ob) {
  if (L.rank <= 1) {
    oa = i * L.a[0];
    ob = i * L.b[0];
    return;
  }
  oa = 0;
  ob = 0;
#pragma unroll
  for (int d = MAX_RANK - 1; d >= 0; --d) {
    if (d < L.rank) {
      i64 n = L.shape[d];
      i64 q = i / n;
      i64 c = i - q * n;
      oa += c * L.a[d];
      ob += c * L.b[d];
      i = q;
    }
  }
}
