/**
 * MXFP4 (OCP Microscaling v1.0) as gpt-oss's released checkpoints store their experts and transformers'
 * integrations/mxfp4.py (convert_moe_packed_tensors) decodes them: blocks of 32 FP4 E2M1 values sharing one E8M0
 * scale. `<name>_blocks` uint8 [E, rows, G, 16] holds two codes per byte, the low nibble first (element 2i low,
 * 2i + 1 high); `<name>_scales` uint8 [E, rows, G] holds each block's exponent biased by 127. Decoded, an expert is
 * [rows, G * 32], transposed to [G * 32, rows]: gpt-oss's [E, in, out] parameters.
 */

/** FP4 E2M1 by code: bit 3 the sign, bits 2-1 the exponent (bias 1), bit 0 the mantissa (transformers' FP4_VALUES). */
export const FP4_E2M1: readonly number[] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** Values per block, sharing one scale. */
export const MXFP4_BLOCK = 32;

/** E8M0's NaN encoding (OCP MX: 0xFF), which no weight may carry. */
const E8M0_NAN = 255;

/**
 * Float32 [experts, groups * 32, rows] from the packed form; returns the first block whose scale is the NaN
 * encoding as an error text instead (the caller names the file).
 */
export function dequantizeMxfp4(blocks: Uint8Array, scales: Uint8Array, experts: number, rows: number, groups: number): Float32Array | { nanScaleAt: number } {
  const cols = groups * MXFP4_BLOCK;
  const out = new Float32Array(experts * cols * rows);
  for (let e = 0; e < experts; e++) {
    for (let row = 0; row < rows; row++) {
      for (let g = 0; g < groups; g++) {
        const block = (e * rows + row) * groups + g;
        const s = scales[block]!;
        if (s === E8M0_NAN) return { nanScaleAt: block };
        const scale = 2 ** (s - 127);
        for (let i = 0; i < MXFP4_BLOCK / 2; i++) {
          const byte = blocks[block * (MXFP4_BLOCK / 2) + i]!;
          const col = g * MXFP4_BLOCK + 2 * i;
          const at = (e * cols + col) * rows + row;
          out[at] = FP4_E2M1[byte & 0x0f]! * scale;
          out[at + rows] = FP4_E2M1[byte >> 4]! * scale;
        }
      }
    }
  }
  return out;
}
