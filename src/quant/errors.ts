/** Bad input to the 4-bit quantization code: an unsupported blocksize or quant type, or a quant state that disagrees with its weight. */
export class QuantError extends Error {
  override readonly name = 'QuantError';
}
