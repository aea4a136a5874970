/**
 * Integer bounds (JSON Schema's minimum, maximum, exclusiveMinimum, exclusiveMaximum on "type": "integer"), which
 * xgrammar 0.1.27 enforces wrongly ([5, 120] lets 125 through): the schema carries the range as a const string
 * marker, and the marker's literal in xgrammar's EBNF is replaced by an exact grammar of the range's decimals.
 */

/** Integers as the JSON grammar writes them have at most 16 digits (finiteNumbers in grammar-engine.ts). */
export const INTEGER_LIMIT = 10n ** 16n - 1n;

const MARKER = 'loraforge-integer-range';
const MARKER_LITERAL = new RegExp(`"\\\\"${MARKER}:(-?\\d+):(-?\\d+)\\\\""`, 'g');

/** Whether a schema's text holds the marker already (a const or enum of the user's own): refused, so no range can be forged. */
export function holdsRangeMarker(schemaText: string): boolean {
  return schemaText.includes(MARKER);
}

/** The schema that stands for the integers lo..hi (lo <= hi, both within INTEGER_LIMIT). */
export function integerRangeSchema(lo: bigint, hi: bigint): { readonly const: string } {
  return { const: `${MARKER}:${lo}:${hi}` };
}

/** xgrammar's EBNF with each range marker's literal replaced by the range's grammar. */
export function withIntegerRanges(ebnf: string): string {
  return ebnf.replace(MARKER_LITERAL, (_, lo: string, hi: string) => `(${integerRangeGrammar(BigInt(lo), BigInt(hi))})`);
}

/** An EBNF alternation matching exactly the decimals of lo..hi, as JSON writes integers (no leading zeros, "-0" never). */
export function integerRangeGrammar(lo: bigint, hi: bigint): string {
  const alternatives: string[] = [];
  if (lo < 0n) for (const p of positiveRange(hi < 0n ? -hi : 1n, -lo)) alternatives.push(`"-" ${p}`);
  if (lo <= 0n && hi >= 0n) alternatives.push('"0"');
  if (hi > 0n) alternatives.push(...positiveRange(lo > 0n ? lo : 1n, hi));
  return alternatives.join(' | ');
}

/** Sequences of digit literals and classes matching a..b (1 <= a <= b), split by length. */
function positiveRange(a: bigint, b: bigint): string[] {
  const out: string[] = [];
  for (let length = a.toString().length; length <= b.toString().length; length++) {
    const low = 10n ** BigInt(length - 1);
    const high = 10n ** BigInt(length) - 1n;
    const from = a > low ? a : low;
    const to = b < high ? b : high;
    if (from <= to) out.push(...sameLength(from.toString(), to.toString()).map((parts) => parts.join(' ')));
  }
  return out;
}

/** x..y, decimals of one length (x <= y), as sequences of EBNF pieces. */
function sameLength(x: string, y: string): string[][] {
  if (x.length === 0) return [[]];
  if (x[0] === y[0]) return sameLength(x.slice(1), y.slice(1)).map((rest) => [`"${x[0]}"`, ...rest]);
  const rest = x.length - 1;
  const nines = '9'.repeat(rest);
  const zeros = '0'.repeat(rest);
  const out: string[][] = [];
  let first = Number(x[0]);
  let last = Number(y[0]);
  if (x.slice(1) !== zeros) {
    out.push(...sameLength(x.slice(1), nines).map((r) => [`"${x[0]}"`, ...r]));
    first++;
  }
  const upper = y.slice(1) !== nines ? sameLength(zeros, y.slice(1)).map((r) => [`"${y[0]}"`, ...r]) : [];
  if (upper.length > 0) last--;
  if (first <= last) out.push([first === last ? `"${first}"` : `[${first}-${last}]`, ...(rest > 0 ? [`[0-9]{${rest}}`] : [])]);
  out.push(...upper);
  return out;
}
