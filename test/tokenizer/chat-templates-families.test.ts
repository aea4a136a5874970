// Real chat templates of Qwen3, Gemma 2/3, Phi-3.5/Phi-4/Phi-4-mini, SmolLM3 and OLMo 2 (test/fixtures/templates/,
// origins in its README.md) render exactly as transformers renders them: expected.json is written by
// make-expected.py, which renders with transformers' own Jinja environment (and checks itself against transformers
// with --check). Then assistant-only loss masking is checked with each family.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AutoTokenizer, TokenizerError } from '../../src/tokenizer/index.js';
import type { ChatMessage, ChatTemplateOptions, PreTrainedTokenizer } from '../../src/tokenizer/index.js';
import { strftime } from '../../src/tokenizer/chat-template.js';
import { DataError } from '../../src/data/errors.js';
import { IGNORE_INDEX, tokenizeExample } from '../../src/data/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tokenizerFolder } from './tokenizer-folder.js';

interface ExpectedCase {
  name: string;
  messages: ChatMessage[];
  kwargs: { add_generation_prompt: boolean; tools?: object[]; documents?: object[]; [kwarg: string]: unknown };
  text?: string;
  /** The text through the Rust tokenizers package with the tiny fixture tokenizer (no special tokens added). */
  tiny_llama_ids?: number[];
  /** The template refuses the conversation: TemplateError carries raise_exception's message. */
  error?: { type: string; message: string };
}

interface ExpectedTemplate {
  template: string;
  file: string;
  special_tokens: Record<string, string>;
  cases: ExpectedCase[];
}

interface Expected {
  strftime_now: { now: string; cases: { format: string; text: string }[] };
  templates: ExpectedTemplate[];
}

const EXPECTED = JSON.parse(readFileSync(fixturePath('templates', 'expected.json'), 'utf8')) as Expected;

function family(name: string): ExpectedTemplate {
  const found = EXPECTED.templates.find((t) => t.template === name);
  if (found === undefined) throw new Error(`expected.json has no template ${name}; run make-expected.py.`);
  return found;
}

function expectedCase(t: ExpectedTemplate, name: string): ExpectedCase {
  const found = t.cases.find((c) => c.name === name);
  if (found === undefined) throw new Error(`expected.json has no case ${name} for ${t.template}; run make-expected.py.`);
  return found;
}

/** The tiny byte-level BPE tokenizer with the family's template as chat_template.jinja and its special tokens. */
async function familyTokenizer(t: ExpectedTemplate): Promise<PreTrainedTokenizer> {
  const dir = await tokenizerFolder({
    'chat_template.jinja': readFileSync(fixturePath('templates', t.file), 'utf8'),
    'tokenizer_config.json': t.special_tokens,
  });
  return AutoTokenizer.fromPretrained(dir);
}

/** transformers' apply_chat_template kwargs as loraforge options; the rest go in as template kwargs. */
function optionsOf(c: ExpectedCase): ChatTemplateOptions {
  const { add_generation_prompt, tools, documents, ...templateKwargs } = c.kwargs;
  return { addGenerationPrompt: add_generation_prompt, tools, documents, templateKwargs };
}

for (const t of EXPECTED.templates) {
  test(`${t.template}: every case renders as transformers renders it, and tokenizes as the text does`, async () => {
    const tok = await familyTokenizer(t);
    for (const c of t.cases) {
      const options = optionsOf(c);
      if (c.error !== undefined) {
        const { message, type } = c.error;
        assert.throws(() => tok.applyChatTemplate(c.messages, { ...options, tokenize: false }), (err: unknown) => {
          assert.ok(err instanceof TokenizerError, `${c.name}: ${String(err)}`);
          assert.match(err.message, /chat_template\.jinja failed on these messages/);
          // raise_exception's message reaches the error as is; a Python TypeError's wording is jinja2's own.
          if (type === 'TemplateError') assert.ok(err.message.includes(`(${message})`), `${c.name}: ${err.message}`);
          return true;
        });
        continue;
      }
      const text = c.text!;
      assert.equal(tok.applyChatTemplate(c.messages, { ...options, tokenize: false }), text, c.name);
      const ids = tok.applyChatTemplate(c.messages, options);
      assert.deepEqual(ids, tok.encode(text, { addSpecialTokens: false }), c.name);
      if (c.tiny_llama_ids !== undefined) assert.deepEqual(ids, c.tiny_llama_ids, `${c.name}: ids differ from the Rust tokenizers'`);
    }
  });
}

test('enableThinking is enable_thinking: Qwen3 and SmolLM3 switch thinking off with it', async () => {
  for (const [name, caseName] of [
    ['Qwen-Qwen3-0.6B', 'thinking_history_enable_thinking_false'],
    ['HuggingFaceTB-SmolLM3-3B', 'enable_thinking_false_generation_prompt'],
  ] as const) {
    const t = family(name);
    const c = expectedCase(t, caseName);
    const tok = await familyTokenizer(t);
    const rendered = tok.applyChatTemplate(c.messages, { addGenerationPrompt: true, enableThinking: false, tokenize: false });
    assert.equal(rendered, c.text, name);
    // The older name for template kwargs still works, and an explicit kwarg wins over enableThinking.
    assert.equal(tok.applyChatTemplate(c.messages, { addGenerationPrompt: true, templateKwargs: { enable_thinking: false }, tokenize: false }), c.text);
    assert.equal(tok.applyChatTemplate(c.messages, { addGenerationPrompt: true, enableThinking: true, templateKwargs: { enable_thinking: false }, tokenize: false }), c.text);
  }
});

test("strftime_now formats as Python's strftime does (C locale), whatever the process locale", () => {
  const [date, time] = EXPECTED.strftime_now.now.split('T') as [string, string];
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  const [h, mi, s] = time.split(':').map(Number) as [number, number, number];
  const now = new Date(y, mo - 1, d, h, mi, s);
  for (const { format, text } of EXPECTED.strftime_now.cases) assert.equal(strftime(now, format), text, format);
});

test('strftime_now reaches templates (SmolLM3 prints today with it)', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  const today = new Date();
  const rendered = tok.applyChatTemplate([], { chatTemplate: '{{ strftime_now("%d %B %Y") }}', tokenize: false });
  // Rendered and compared within the same second, except across midnight.
  assert.equal(rendered, strftime(today, '%d %B %Y'));
  assert.match(rendered, /^\d\d (January|February|March|April|May|June|July|August|September|October|November|December) \d{4}$/);
});

// ---- assistant-only loss masking ------------------------------------------------------------------------------
//
// What is trained (labels kept) for an assistant turn: the text the full rendering holds from the end of the
// generation prompt to the end of that turn: the content as the template writes it (trimmed by Gemma, with Qwen3's
// <think> block on turns after the last user query, without it on earlier ones) plus the template's end-of-turn text:
// '<|im_end|>\n' (ChatML: Qwen3, SmolLM3), '<end_of_turn>\n' (Gemma), '<|end|>\n' (Phi-3.5), '<|end|>' (Phi-4-mini),
// '<|im_end|>' (Phi-4), eos (OLMo 2), and on the last turn whatever the template closes the conversation with (Phi's
// eos). Role headers and the newline OLMo 2 writes between turns are not trained. This is what TRL's completion-only
// collator trains (everything after the response template up to the next turn), and what transformers'
// return_assistant_tokens_mask marks in templates whose {% generation %} block wraps content and end of turn.

const A1 = 'Low-rank adapters on frozen weights.';
const A2 = '  LoRA over a 4-bit base.\n';

/** Each run of trained positions, decoded. */
function trainedRuns(tok: PreTrainedTokenizer, ids: number[], labels: number[]): string[] {
  const runs: number[][] = [];
  labels.forEach((label, i) => {
    if (label === IGNORE_INDEX) return;
    assert.equal(label, ids[i]);
    if (i === 0 || labels[i - 1] === IGNORE_INDEX) runs.push([]);
    runs[runs.length - 1]!.push(ids[i]!);
  });
  return runs.map((run) => tok.decode(run));
}

const MASKED: { template: string; caseName: string; options?: ChatTemplateOptions; trained: string[] }[] = [
  { template: 'Qwen-Qwen3-0.6B', caseName: 'ends_with_assistant', trained: [`${A1}<|im_end|>\n`, `<think>\n\n</think>\n\n${A2}<|im_end|>\n`] },
  {
    template: 'Qwen-Qwen3-0.6B',
    caseName: 'thinking_history_ends_with_assistant',
    trained: [`${A1}<|im_end|>\n`, '<think>\nQuantize the base, train adapters.\n</think>\n\nLoRA over a 4-bit base.<|im_end|>\n'],
  },
  {
    template: 'Qwen-Qwen3-0.6B',
    caseName: 'thinking_history_ends_with_assistant',
    // The enable_thinking=false prompt opens "<think>\n" itself; only what follows it is the model's.
    options: { enableThinking: false },
    trained: [`${A1}<|im_end|>\n`, 'Quantize the base, train adapters.\n</think>\n\nLoRA over a 4-bit base.<|im_end|>\n'],
  },
  {
    template: 'Qwen-Qwen3-0.6B',
    caseName: 'tools',
    options: { tools: family('Qwen-Qwen3-0.6B').cases.find((c) => c.name === 'tools')!.kwargs.tools },
    trained: ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call><|im_end|>\n', '<think>\n\n</think>\n\n21 °C.<|im_end|>\n'],
  },
  { template: 'google-gemma-2-2b-it', caseName: 'ends_with_assistant', trained: [`${A1}<end_of_turn>\n`, `${A2.trim()}<end_of_turn>\n`] },
  { template: 'google-gemma-3-270m-it', caseName: 'ends_with_assistant', trained: [`${A1}<end_of_turn>\n`, `${A2.trim()}<end_of_turn>\n`] },
  { template: 'microsoft-Phi-3.5-mini-instruct', caseName: 'ends_with_assistant', trained: [`${A1}<|end|>\n`, `${A2}<|end|>\n<|endoftext|>`] },
  { template: 'microsoft-phi-4', caseName: 'ends_with_assistant', trained: [`${A1}<|im_end|>`, `${A2}<|im_end|>`] },
  { template: 'microsoft-Phi-4-mini-instruct', caseName: 'ends_with_assistant', trained: [`${A1}<|end|>`, `${A2}<|end|><|endoftext|>`] },
  {
    template: 'llama-cpp-microsoft-Phi-4-mini-instruct',
    caseName: 'tools',
    options: { tools: family('llama-cpp-microsoft-Phi-4-mini-instruct').cases.find((c) => c.name === 'tools')!.kwargs.tools },
    trained: ['<|tool_call|>{"name": "get_weather", "arguments": {"city": "Zürich"}}<|/tool_call|><|end|>', '21 °C.<|end|><|endoftext|>'],
  },
  { template: 'HuggingFaceTB-SmolLM3-3B', caseName: 'ends_with_assistant', trained: [`${A1}<|im_end|>\n`, `${A2}<|im_end|>\n`] },
  { template: 'HuggingFaceTB-SmolLM3-3B', caseName: 'enable_thinking_false', options: { enableThinking: false }, trained: [`${A1}<|im_end|>\n`, `${A2}<|im_end|>\n`] },
  { template: 'allenai-OLMo-2-1124-7B-Instruct', caseName: 'ends_with_assistant', trained: [`${A1}<|endoftext|>`, `${A2}<|endoftext|>`] },
];

for (const { template, caseName, options = {}, trained } of MASKED) {
  const label = options.enableThinking === false ? `${caseName}, enable_thinking false` : caseName;
  test(`${template} (${label}): assistant-only labels cover exactly the assistant turns as the full rendering has them`, async () => {
    const t = family(template);
    const c = expectedCase(t, caseName);
    const tok = await familyTokenizer(t);
    const ex = tokenizeExample({ kind: 'chat', messages: c.messages }, tok, { chatTemplate: options });
    const full = tok.applyChatTemplate(c.messages, { ...options, tokenize: false });
    if (options.enableThinking === undefined) assert.equal(full, c.text);
    assert.equal(tok.decode(ex.inputIds), full);
    assert.deepEqual(trainedRuns(tok, ex.inputIds, ex.labels), trained);
    // --train-on-inputs: the same text, every position trained.
    const all = tokenizeExample({ kind: 'chat', messages: c.messages }, tok, { chatTemplate: options, trainOnInputs: true });
    assert.equal(tok.decode(all.inputIds), full);
    assert.ok(all.labels.every((l, i) => l === all.inputIds[i]));
  });
}

test('Qwen3: earlier assistant turns lose their <think> block in the full rendering, so rendering prefixes is not enough', async () => {
  const tok = await familyTokenizer(family('Qwen-Qwen3-0.6B'));
  const c = expectedCase(family('Qwen-Qwen3-0.6B'), 'thinking_history_ends_with_assistant');
  const firstTurn = tok.applyChatTemplate(c.messages.slice(0, 3), { tokenize: false });
  const full = tok.applyChatTemplate(c.messages, { tokenize: false });
  assert.ok(firstTurn.includes('<think>\nThe user wants a definition.\n</think>'));
  assert.ok(!full.startsWith(firstTurn) && !full.includes('The user wants a definition.'));
});

test('a template whose assistant turns cannot be located fails in one sentence naming it and --train-on-inputs', async () => {
  // Writes the assistant's content twice and the turns in reverse, so no rendering of a part of the conversation
  // is a part of the whole.
  const source = '{% for m in messages | reverse %}[{{ m.role }}:{{ m.content }}{{ m.content }}]{% endfor %}';
  const dir = await tokenizerFolder({ 'chat_template.jinja': source });
  const tok = await AutoTokenizer.fromPretrained(dir);
  const messages = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Bye' },
    { role: 'assistant', content: 'Later.' },
  ];
  assert.throws(() => tokenizeExample({ kind: 'chat', messages }, tok, { where: 'd.jsonl:3' }), (err: unknown) => {
    assert.ok(err instanceof DataError);
    assert.match(err.message, /^d\.jsonl:3: the chat template in .*chat_template\.jinja does not render the assistant turn messages\[1\] .*; pass --train-on-inputs to train on every token\.$/);
    assert.equal(err.message.split('. ').length, 1);
    return true;
  });
});

test('jinja2 semantics the real templates rely on: strip(chars), loops over undefined, globals, every named special token', async () => {
  const dir = await tokenizerFolder({ 'tokenizer_config.json': { bos_token: '<s>', mask_token: '<mask>', sep_token: { content: '<sep>' } } });
  const tok = await AutoTokenizer.fromPretrained(dir);
  const source =
    "[{{ '\\n  x\\n'.lstrip('\\n') }}|{{ 'xxhixx'.strip('x') }}|{{ ' a '.strip() }}|{{ 'ab\\n'.rstrip('\\n') }}|" +
    '{% for a in nothing %}{{ a }}{% else %}none{% endfor %}|{% for a in nothing if a %}{{ a }}{% endfor %}|' +
    '{{ range(3) | list }}|{{ mask_token }}{{ sep_token }}{{ bos_token }}]';
  // What jinja2 3.1 renders in transformers' environment (make-expected.py's compile_template).
  assert.equal(tok.applyChatTemplate([], { chatTemplate: source, tokenize: false }), '[  x\n|hi|a|ab|none||[0, 1, 2]|<mask><sep><s>]');
});

test('template kwargs shadow globals as render arguments do in jinja2 (e.g. a fixed strftime_now)', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  const chatTemplate = '{{ strftime_now("%d %B %Y") }}|{{ bos_token }}';
  const templateKwargs = { strftime_now: () => '07 March 2025', bos_token: '<b>' };
  assert.equal(tok.applyChatTemplate([], { chatTemplate, templateKwargs, tokenize: false }), '07 March 2025|<b>');
});
