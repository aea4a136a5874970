/**
 * What a string pattern's pieces must not match: the characters a JSON string must escape ('"', '\', U+0000 to
 * U+001F), and characters beyond ASCII, whose bytes the engine takes without checking UTF-8 (an invalid sequence
 * decodes to more U+FFFD characters than the engine counted).
 */
const REFUSED_CHARS = ['"', '\\', ...Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)), '\u00e9', '\u4e00', '\ufffd'];

/**
 * A pattern matching strings of `min` to `max` printable ASCII characters but '"' and '\': what minLength and
 * maxLength become, since the engine's own length grammar lets control characters through unescaped (invalid
 * JSON), and beyond ASCII it would count what could decode to more characters (see REFUSED_CHARS).
 */
export function lengthPattern(min: number, max: number | undefined): string {
  return String.raw`^[ !#-\[\]-~]` + `{${min},${max ?? ''}}$`;
}

/**
 * The first piece of `pattern` (a character, class, escape or ".") that can match one of REFUSED_CHARS, or null
 * when there is none. The engine writes a string pattern's characters into the output as they are, never
 * escaped, so such a pattern could produce invalid JSON. A piece JavaScript cannot read counts as unsafe.
 */
export function unsafePiece(pattern: string): string | null {
  for (const piece of pieces(pattern)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${piece})$`, 's');
    } catch {
      return piece;
    }
    if (REFUSED_CHARS.some((c) => re.test(c))) return piece;
  }
  return null;
}

/** The pieces of a regular expression that each match one character; groups, quantifiers and anchors are skipped. */
function pieces(pattern: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      const len = next === 'u' ? 6 : next === 'x' ? 4 : (next === 'p' || next === 'P') && pattern[i + 2] === '{' ? pattern.indexOf('}', i) + 1 - i : 2;
      out.push(pattern.slice(i, i + Math.max(len, 2)));
      i += Math.max(len, 2);
    } else if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1;
      out.push(pattern.slice(i, j + 1));
      i = j + 1;
    } else if (c === '(' && pattern[i + 1] === '?') {
      i += pattern[i + 2] === '<' ? 4 : 3;
    } else if (c === '{' && /^\{\d+(,\d*)?\}/.test(pattern.slice(i))) {
      i = pattern.indexOf('}', i) + 1;
    } else if ('()|*+?^$'.includes(c)) {
      i++;
    } else {
      out.push(c);
      i++;
    }
  }
  return out;
}
