// Elementwise kernels: fill, strided copy with dtype conversion, unary, broadcasting binary, affine.
//
//   fill_u64:       out[i] = value (8-byte elements; narrower fills use cuMemsetD8/16/32)
//   copy_strided:   dst[L.b . idx] = convert(src[L.a . idx]) for every index idx of L.shape
//   unary:          out[i] = f(x[i])
//   binary_strided: out[i] = a[L.a . idx(i)] op b[L.b . idx(i)], out contiguous
//   affine:         out[i] = x[i] * scale + bias, in float64 like the CPU reference, then rounded
//
// There are no backward kernels here: the gradients of these maps are other elementwise maps, composed in ops/
// (siluGrad is the one binary op that exists only for a backward pass).

// Must match UNARY_CODES in cuda-backend.ts.
#define U_NEG 0
#define U_EXP 1
#define U_LOG 2
#define U_SQRT 3
#define U_RSQRT 4
#define U_SIGMOID 5
#define U_SILU 6
#define U_ABS 7
#define U_SQUARE 8
#define U_RECIP 9
#define U_TANH 10
#define U_RELU 11

// Must match BINARY_CODES in cuda-backend.ts.
#define B_ADD 0
#define B_SUB 1
#define B_MUL 2
#define B_DIV 3
#define B_MAXIMUM 4
#define B_MINIMUM 5
#define B_SILU_GRAD 6
#define B_GT 7

extern "C" __global__ void fill_u64(u64* out, u64 value, i64 n) {
  GRID_STRIDE(i, n) out[i] = value;
}

__device__ __forceinline__ int dtype_bytes(int dt) {
  switch (dt) {
    case DT_F32:
    case DT_I32: return 4;
    case DT_BF16:
    case DT_F16: return 2;
    case DT_I64: return 8;
    default: return 1;
  }
}

extern "C" __global__ void copy_strided(const void* src, int srcDt, void* dst, int dstDt, Strided2 L, i64 n) {
  const bool same = srcDt == dstDt;
  const int bytes = dtype_bytes(srcDt);
  GRID_STRIDE(i, n) {
    i64 s, d;
    strided_offsets(L, i, s, d);
    if (same) {
      switch (bytes) {
        case 8: ((u64*)dst)[d] = ((const u64*)src)[s]; break;
        case 4: ((u32*)dst)[d] = ((const u32*)src)[s]; break;
        case 2: ((u16*)dst)[d] = ((const u16*)src)[s]; break;
        default: ((unsigned char*)dst)[d] = ((const unsigned char*)src)[s]; break;
      }
    } else {
      store_d(dst, dstDt, d, load_d(src, srcDt, s));
    }
  }
}

__device__ __forceinline__ float unary_op(int op, float x) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return 1.0f / sqrtf(x);
    case U_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case U_SILU: return x / (1.0f + expf(-x));
    case U_ABS: return fabsf(x);
    case U_SQUARE: return x * x;
    case U_RECIP: return 1.0f / x;
    case U_TANH: return tanhf(x);
    default: return x > 0.0f ? x : 0.0f;
  }
}

extern "C" __global__ void unary(int op, const void* x, int xDt, void* out, int outDt, i64 n) {
  GRID_STRIDE(i, n) store_f(out, outDt, i, unary_op(op, load_f(x, xDt, i)));
}

__device__ __forceinline__ float binary_op(int op, float a, float b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_MAXIMUM: return (a >= b || is_nan(a)) ? a : b;
    case B_MINIMUM: return (a <= b || is_nan(a)) ? a : b;
    case B_SILU_GRAD: {
      // d/da silu(a) * b = sigmoid(a) * (1 + a * (1 - sigmoid(a))) * b
      float s = 1.0f / (1.0f + expf(-a));
      return s * (1.0f + a * (1.0f - s)) * b;
    }
    default: return a > b ? 1.0f : 0.0f;
  }
}

extern "C" __global__ void binary_strided(int op, const void* a, int aDt, const void* b, int bDt, void* out, int outDt, Strided2 L, i64 n) {
  GRID_STRIDE(i, n) {
    i64 ia, ib;
    strided_offsets(L, i, ia, ib);
    store_f(out, outDt, i, binary_op(op, load_f(a, aDt, ia), load_f(b, bDt, ib)));
  }
}

extern "C" __global__ void affine(const void* x, int xDt, void* out, int outDt, i64 n, double scale, double bias) {
  GRID_STRIDE(i, n) store_f(out, outDt, i, (float)((double)load_f(x, xDt, i) * scale + bias));
}
