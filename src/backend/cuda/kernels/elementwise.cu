// Elementwise kernels: fill, strided copy with dtype conversion, unary, broadcasting binary, affine.
//
//   fill_u64:       out[i] = value (8-byte elements; narrower fills use cuMemsetD8/16/32)
//   copy_strided:   dst[L.b . idx] = convert(src[L.a . idx]) for every index idx of L.shape
//   unary:          out[i] = f(x[i])
//   binary_strided: out[i] = a[L.a . idx(i)] op b[L.b . idx(i)], out contiguous
//   affine:         out[i] = x[i] * scale + bias, in float64 like the CPU reference, then rounded
//
// There are no backward kernels here: the gradients of these maps are other elementwise maps, composed in ops/
// (siluGrad, geluGrad and geluTanhGrad are the binary ops that exist only for backward passes: d/da f(a) * b).

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
#define U_GELU 12
#define U_GELU_TANH 13

// Must match BINARY_CODES in cuda-backend.ts.
#define B_ADD 0
#define B_SUB 1
#define B_MUL 2
#define B_DIV 3
#define B_MAXIMUM 4
#define B_MINIMUM 5
#define B_SILU_GRAD 6
#define B_GT 7
#define B_GELU_GRAD 8
#define B_GELU_TANH_GRAD 9

// GELU constants as torch's kernels write them, in float32: kAlpha = M_SQRT1_2, kBeta = M_SQRT2 * M_2_SQRTPI * 0.5
// (= sqrt(2 / pi)), kKappa = 0.044715, and 1 / sqrt(2 pi) for the normal density. The maps below follow the
// operation order of torch's GeluKernel, in float32.
#define GELU_ALPHA 0.70710678118654752440f
#define GELU_BETA 0.79788456080286535588f
#define GELU_KAPPA 0.044715f
#define GELU_PDF 0.39894228040143267794f

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

// ---- vectorized paths: 8 elements per 16-byte access for contiguous operands ----
//
// Taken when every operand is contiguous and 16-byte aligned (tensors at a buffer's start are: the allocator
// aligns blocks to 512 bytes); elements past the last whole group of 8 go through the scalar code. Each element
// gets exactly the arithmetic of the scalar path, so both paths write identical bits.

#define VEC 8

__device__ __forceinline__ bool aligned16(const void* p) { return ((u64)p & 15) == 0; }

__device__ __forceinline__ uint4 pack_bf16x8(const float* f) {
  uint4 v;
  v.x = (u32)f32_to_bf16(f[0]) | ((u32)f32_to_bf16(f[1]) << 16);
  v.y = (u32)f32_to_bf16(f[2]) | ((u32)f32_to_bf16(f[3]) << 16);
  v.z = (u32)f32_to_bf16(f[4]) | ((u32)f32_to_bf16(f[5]) << 16);
  v.w = (u32)f32_to_bf16(f[6]) | ((u32)f32_to_bf16(f[7]) << 16);
  return v;
}

// Stores 8 contiguous elements of a float32 or bfloat16 array starting at element 8g (load8 is in common.cuh).
__device__ __forceinline__ void store8(void* p, int dt, i64 g, const float* f) {
  if (dt == DT_BF16) {
    ((uint4*)p)[g] = pack_bf16x8(f);
  } else {
    float4 a, b;
    a.x = f[0]; a.y = f[1]; a.z = f[2]; a.w = f[3]; b.x = f[4]; b.y = f[5]; b.z = f[6]; b.w = f[7];
    ((float4*)p)[2 * g] = a;
    ((float4*)p)[2 * g + 1] = b;
  }
}

__device__ __forceinline__ bool vector_dtype(int dt) { return dt == DT_F32 || dt == DT_BF16; }

// Grid-stride loop over the elements [8 * (n / 8), n) that no whole group covers.
#define TAIL_STRIDE(i, n) for (i64 i = ((n) / VEC) * VEC + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

extern "C" __global__ void copy_strided(const void* src, int srcDt, void* dst, int dstDt, Strided2 L, i64 n) {
  // Contiguous float32 <-> bfloat16 conversion (casts around float32 adapters): widening is exact, narrowing
  // rounds the float32 value once, as store_d does.
  if (L.rank == 1 && L.a[0] == 1 && L.b[0] == 1 && srcDt != dstDt && vector_dtype(srcDt) && vector_dtype(dstDt) && aligned16(src) &&
      aligned16(dst)) {
    float f[VEC];
    GRID_STRIDE(g, n / VEC) {
      load8(src, srcDt, g, f);
      store8(dst, dstDt, g, f);
    }
    TAIL_STRIDE(i, n) store_f(dst, dstDt, i, load_f(src, srcDt, i));
    return;
  }
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
    case U_GELU: return x * 0.5f * (1.0f + erff(x * GELU_ALPHA));
    case U_GELU_TANH: return 0.5f * x * (1.0f + tanhf(GELU_BETA * (x + GELU_KAPPA * (x * x * x))));
    default: return x > 0.0f ? x : 0.0f;
  }
}

extern "C" __global__ void unary(int op, const void* x, int xDt, void* out, int outDt, i64 n) {
  if (vector_dtype(xDt) && vector_dtype(outDt) && aligned16(x) && aligned16(out)) {
    float f[VEC];
    GRID_STRIDE(g, n / VEC) {
      load8(x, xDt, g, f);
#pragma unroll
      for (int j = 0; j < VEC; ++j) f[j] = unary_op(op, f[j]);
      store8(out, outDt, g, f);
    }
    TAIL_STRIDE(i, n) store_f(out, outDt, i, unary_op(op, load_f(x, xDt, i)));
    return;
  }
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
    case B_GELU_GRAD: {
      // d/da gelu(a) * b = (Phi(a) + a phi(a)) * b
      const float cdf = 0.5f * (1.0f + erff(a * GELU_ALPHA));
      const float pdf = GELU_PDF * expf(-0.5f * a * a);
      return (cdf + a * pdf) * b;
    }
    case B_GELU_TANH_GRAD: {
      // d/da [0.5 a (1 + t)] * b with t = tanh(kBeta (a + kKappa a^3))
      const float a2 = a * a;
      const float t = tanhf(GELU_BETA * (a + GELU_KAPPA * (a2 * a)));
      return (0.5f * (1.0f + t) + 0.5f * a * (1.0f - t * t) * GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * a2)) * b;
    }
    default: return a > b ? 1.0f : 0.0f;
  }
}

extern "C" __global__ void binary_strided(int op, const void* a, int aDt, const void* b, int bDt, void* out, int outDt, Strided2 L, i64 n) {
  if (L.rank == 1 && L.a[0] == 1 && L.b[0] == 1 && vector_dtype(aDt) && vector_dtype(bDt) && vector_dtype(outDt) && aligned16(a) &&
      aligned16(b) && aligned16(out)) {
    float fa[VEC], fb[VEC];
    GRID_STRIDE(g, n / VEC) {
      load8(a, aDt, g, fa);
      load8(b, bDt, g, fb);
#pragma unroll
      for (int j = 0; j < VEC; ++j) fa[j] = binary_op(op, fa[j], fb[j]);
      store8(out, outDt, g, fa);
    }
    TAIL_STRIDE(i, n) store_f(out, outDt, i, binary_op(op, load_f(a, aDt, i), load_f(b, bDt, i)));
    return;
  }
  GRID_STRIDE(i, n) {
    i64 ia, ib;
    strided_offsets(L, i, ia, ib);
    store_f(out, outDt, i, binary_op(op, load_f(a, aDt, ia), load_f(b, bDt, ib)));
  }
}

extern "C" __global__ void affine(const void* x, int xDt, void* out, int outDt, i64 n, double scale, double bias) {
  if (vector_dtype(xDt) && vector_dtype(outDt) && aligned16(x) && aligned16(out)) {
    float f[VEC];
    GRID_STRIDE(g, n / VEC) {
      load8(x, xDt, g, f);
#pragma unroll
      for (int j = 0; j < VEC; ++j) f[j] = (float)((double)f[j] * scale + bias);
      store8(out, outDt, g, f);
    }
    TAIL_STRIDE(i, n) store_f(out, outDt, i, (float)((double)load_f(x, xDt, i) * scale + bias));
    return;
  }
  GRID_STRIDE(i, n) store_f(out, outDt, i, (float)((double)load_f(x, xDt, i) * scale + bias));
}

// ---- gated MLP activation: out = act(gate) * up over [rows, cols] (GatedArgs in backend.ts) ----
//
// gate and up are row views (row r at r * rowStride, columns contiguous: the halves of Phi-3's gate_up_proj too);
// dy and the outputs are contiguous. act(gate) is rounded to the dtype before it meets up or dy, so every element
// gets the bits the composed unary + binary kernels give. Blocks: x over column groups, y over rows (strided).

__device__ __forceinline__ float round_to(int dt, float v) {
  if (dt == DT_BF16) return bf16_to_f32(f32_to_bf16(v));
  if (dt == DT_F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

__device__ __forceinline__ int gated_grad_op(int act) {
  return act == U_SILU ? B_SILU_GRAD : act == U_GELU ? B_GELU_GRAD : B_GELU_TANH_GRAD;
}

// 8 columns per thread when every row of every operand starts 16-byte aligned.
__device__ __forceinline__ bool gated_vec(int dt, i64 cols, i64 gateRow, i64 upRow, const void* gate, const void* up) {
  return vector_dtype(dt) && cols % VEC == 0 && gateRow % VEC == 0 && upRow % VEC == 0 && aligned16(gate) && aligned16(up);
}

extern "C" __global__ void gated_forward(int act, const void* gate, i64 gateRow, const void* up, i64 upRow, void* out, int dt, i64 rows, i64 cols) {
  const bool vec = gated_vec(dt, cols, gateRow, upRow, gate, up) && aligned16(out);
  const i64 width = vec ? cols / VEC : cols;
  for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
    for (i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x; c < width; c += (i64)gridDim.x * blockDim.x) {
      if (vec) {
        float g[VEC], u[VEC];
        load8(gate, dt, r * (gateRow / VEC) + c, g);
        load8(up, dt, r * (upRow / VEC) + c, u);
#pragma unroll
        for (int j = 0; j < VEC; ++j) g[j] = round_to(dt, unary_op(act, g[j])) * u[j];
        store8(out, dt, r * width + c, g);
      } else {
        const float a = round_to(dt, unary_op(act, load_f(gate, dt, r * gateRow + c)));
        store_f(out, dt, r * cols + c, a * load_f(up, dt, r * upRow + c));
      }
    }
  }
}

extern "C" __global__ void gated_backward(int act, const void* gate, i64 gateRow, const void* up, i64 upRow, const void* dy, void* dgate, void* dup, int dt,
                                          i64 rows, i64 cols) {
  const bool vec = gated_vec(dt, cols, gateRow, upRow, gate, up) && aligned16(dy) && aligned16(dgate) && aligned16(dup);
  const i64 width = vec ? cols / VEC : cols;
  const int gradOp = gated_grad_op(act);
  for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
    for (i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x; c < width; c += (i64)gridDim.x * blockDim.x) {
      if (vec) {
        float g[VEC], u[VEC], d[VEC], o[VEC];
        load8(gate, dt, r * (gateRow / VEC) + c, g);
        load8(up, dt, r * (upRow / VEC) + c, u);
        load8(dy, dt, r * width + c, d);
        if (dup) {
#pragma unroll
          for (int j = 0; j < VEC; ++j) o[j] = d[j] * round_to(dt, unary_op(act, g[j]));
          store8(dup, dt, r * width + c, o);
        }
        if (dgate) {
#pragma unroll
          for (int j = 0; j < VEC; ++j) o[j] = binary_op(gradOp, g[j], round_to(dt, d[j] * u[j]));
          store8(dgate, dt, r * width + c, o);
        }
      } else {
        const float g = load_f(gate, dt, r * gateRow + c);
        const float u = load_f(up, dt, r * upRow + c);
        const float d = load_f(dy, dt, r * cols + c);
        if (dup) store_f(dup, dt, r * cols + c, d * round_to(dt, unary_op(act, g)));
        if (dgate) store_f(dgate, dt, r * cols + c, binary_op(gradOp, g, round_to(dt, d * u)));
      }
    }
  }
}
