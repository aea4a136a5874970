/** The outcome of parsing a JSON file's text: its value, or the one sentence that says what is wrong with it. */
export type JsonText = { readonly value: unknown } | { readonly problem: string };

/**
 * Parses the JSON text of the file at `path`. A syntax error becomes one sentence naming the file: the field
 * holding NaN or Infinity when that is the cause (Python's json writes them for non-finite floats), else the
 * parser's first line, ended by `fix`.
 */
export function parseJsonText(text: string, path: string, fix: string): JsonText {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    const nonFinite = /"([^"\\]*)"\s*:\s*(NaN|-?Infinity)\s*[,}]/.exec(text);
    if (nonFinite) return { problem: `${path}: "${nonFinite[1]}" is ${nonFinite[2]}, which Python's json writes for a non-finite float but JSON does not allow; give it a finite value.` };
    return { problem: `${path} is not valid JSON (${(e as Error).message.split('\n')[0]}); ${fix}.` };
  }
}
