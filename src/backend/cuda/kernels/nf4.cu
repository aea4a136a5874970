// NF4 dequantization in bitsandbytes' layout: two 4-bit codes per byte, the first element in the high nibble,
// one float32 absmax per block of `blocksize` elements, a 16-entry code book:
//
//   out[i] = code[nibble(i)] * absmax[i / blocksize]
//
// There is no backward: the quantized base weight is frozen (QLoRA trains only the adapters).

extern "C" __global__ void nf4_dequantize(const unsigned char* packed, const void* absmax, int absDt, const void* code, int codeDt,
                                          void* out, int outDt, i64 n, i64 blocksize) {
  __shared__ float levels[16];
  if (threadIdx.x < 16) levels[threadIdx.x] = load_f(code, codeDt, threadIdx.x);
  __syncthreads();
  GRID_STRIDE(i, n) {
    const unsigned char byte = packed[i >> 1];
    const int nibble = (i & 1) == 0 ? (byte >> 4) : (byte & 0x0f);
    store_f(out, outDt, i, levels[nibble] * load_f(absmax, absDt, i / blocksize));
  }
}
