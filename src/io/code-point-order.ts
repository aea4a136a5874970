/**
 * Orders strings by Unicode code point, which is also the order of their UTF-8 bytes: how Rust sorts `String`
 * and Python sorts `str`. JS's `<` compares UTF-16 units instead and disagrees above U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
