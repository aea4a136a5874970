// NF4 dequantization in bitsandbytes' layout: two 4-bit codes per byte, the first element in the high nibble,
// one float32 absmax per block of `blocksize` elements, a 16-entry code book:
//
//   out[i] = code[nibble(i)] * absmax[i / blocksize]
//
// There is no backward: the quantized base weight is frozen (QLoRA trains only the adapters).
//
// The common case (bfloat16 output, float32 absmax, n and blocksize multiples of 16, 16-byte aligned output)
// takes a vectorized path: each thread turns 8 packed bytes (one 8-byte load) into 16 bfloat16 values (two 16-byte
// stores) with one absmax load, since 16 consecutive elements never straddle a block. Every value is the same
// single float32 product rounded to bfloat16 as in the generic path, so both paths write identical bits.

__device__ __forceinline__ u32 bf16_pair(float first, float second) {
  // Little-endian: the element at the lower address is the low half of the word.
  return (u32)f32_to_bf16(first) | ((u32)f32_to_bf16(second) << 16);
}

extern "C" __global__ void nf4_dequantize(const unsigned char* packed, const void* absmax, int absDt, const void* code, int codeDt,
                                          void* out, int outDt, i64 n, i64 blocksize) {
  __shared__ float levels[16];
  if (threadIdx.x < 16) levels[threadIdx.x] = load_f(code, codeDt, threadIdx.x);
  __syncthreads();
  const bool vectorized = outDt == DT_BF16 && absDt == DT_F32 && (n & 15) == 0 && (blocksize & 15) == 0 &&
                          (((u64)out | (u64)packed) & 15) == 0;
  if (vectorized) {
    const u64* codes8 = (const u64*)packed;
    const float* scales = (const float*)absmax;
    uint4* out16 = (uint4*)out;
    const i64 groups = n >> 4;
    GRID_STRIDE(g, groups) {
      const u64 bytes = codes8[g];
      const float s = scales[(g << 4) / blocksize];
      u32 w[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const u32 byte = (u32)(bytes >> (8 * j)) & 0xffu;
        w[j] = bf16_pair(levels[byte >> 4] * s, levels[byte & 0x0fu] * s);
      }
      uint4 lo, hi;
      lo.x = w[0]; lo.y = w[1]; lo.z = w[2]; lo.w = w[3];
      hi.x = w[4]; hi.y = w[5]; hi.z = w[6]; hi.w = w[7];
      out16[2 * g] = lo;
      out16[2 * g + 1] = hi;
    }
    return;
  }
  GRID_STRIDE(i, n) {
    const unsigned char byte = packed[i >> 1];
    const int nibble = (i & 1) == 0 ? (byte >> 4) : (byte & 0x0f);
    store_f(out, outDt, i, levels[nibble] * load_f(absmax, absDt, i / blocksize));
  }
}
