import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

/** The xgrammar WebAssembly build's exports (its classes: TokenizerInfo, GrammarCompiler, GrammarMatcher, ...). */
export type Xgrammar = typeof import('@mlc-ai/web-xgrammar');

/** One instance of the module, with what its C++ side printed before it aborted (its error messages). */
export interface XgrammarInstance {
  readonly xgr: Xgrammar;
  /** The lines printed since the last call: a failed parse prints "[FATAL] file:line: message", then throws "Aborted()". */
  takeMessages(): string[];
}

const require = createRequire(import.meta.url);
const entry = require.resolve('@mlc-ai/web-xgrammar');
let source: string | null = null;

/**
 * A fresh instance of @mlc-ai/web-xgrammar. Its bundle is UMD inside a package marked "type": "module", and its
 * emscripten glue calls `require` and reads `__filename`, so neither `import` nor `require` loads it in Node; it is
 * evaluated here as the CommonJS module it is. Each instance has its own WebAssembly memory and its own console,
 * so an instance that aborted (an abort leaks its stack: some dozens of them hang it) can be dropped for a new one.
 */
export function loadXgrammar(): XgrammarInstance {
  source ??= readFileSync(entry, 'utf8');
  const messages: string[] = [];
  const print = (...parts: unknown[]) => {
    messages.push(parts.map(String).join(' '));
  };
  const quiet = { ...console, log: print, info: print, warn: print, error: print };
  const module = { exports: {} as Xgrammar };
  const factory = new Function('exports', 'module', 'require', '__filename', '__dirname', 'console', source) as (...args: unknown[]) => void;
  factory.call(module.exports, module.exports, module, require, entry, dirname(entry), quiet);
  return { xgr: module.exports, takeMessages: () => messages.splice(0) };
}
