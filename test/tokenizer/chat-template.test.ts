import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { AutoTokenizer, TokenizerError } from '../../src/tokenizer/index.js';
import type { ChatMessage } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { referenceIds, tokenizerFolder } from './tokenizer-folder.js';

const MESSAGES: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Explain LoRA in one line.' },
];
const RENDERED_WITHOUT_PROMPT =
  '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nExplain LoRA in one line.<|im_end|>\n';
const GENERATION_PROMPT = '<|im_start|>assistant\n';

for (const model of ['tiny-llama', 'tiny-qwen2']) {
  test(`${model}: chat template ids with generation prompt equal transformers'`, async () => {
    const tok = await AutoTokenizer.fromPretrained(fixturePath(model));
    const expected = await referenceIds(`${model}-ref.safetensors`, 'chat_template_ids');
    assert.deepEqual(tok.applyChatTemplate(MESSAGES, { addGenerationPrompt: true }), expected);
    assert.deepEqual(tok.applyChatTemplate(MESSAGES, { addGenerationPrompt: true, tokenize: true }), expected);
  });
}

test('tokenize: false returns the rendered text, and the generation prompt is off by default', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  assert.equal(tok.applyChatTemplate(MESSAGES, { tokenize: false }), RENDERED_WITHOUT_PROMPT);
  assert.equal(tok.applyChatTemplate(MESSAGES, { addGenerationPrompt: true, tokenize: false }), RENDERED_WITHOUT_PROMPT + GENERATION_PROMPT);
});

test('chatTemplate exposes the source of chat_template.jinja', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-qwen2'));
  assert.equal(tok.chatTemplate, await readFile(fixturePath('tiny-qwen2', 'chat_template.jinja'), 'utf8'));
});

test('a chat_template string in tokenizer_config.json is used when there is no chat_template.jinja', async () => {
  const dir = await tokenizerFolder({ 'tokenizer_config.json': { chat_template: '{% for m in messages %}[{{ m.content }}]{% endfor %}' } });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.equal(tok.applyChatTemplate(MESSAGES, { tokenize: false }), '[You are terse.][Explain LoRA in one line.]');
});

test('chat_template.jinja wins over tokenizer_config.json', async () => {
  const dir = await tokenizerFolder({
    'tokenizer_config.json': { chat_template: 'from config' },
    'chat_template.jinja': 'from jinja file',
  });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.equal(tok.chatTemplate, 'from jinja file');
  assert.equal(tok.applyChatTemplate(MESSAGES, { tokenize: false }), 'from jinja file');
});

test('named templates: "default" by default, "tool_use" when tools are passed, any by name', async () => {
  const dir = await tokenizerFolder({
    'tokenizer_config.json': {
      chat_template: [
        { name: 'default', template: 'plain' },
        { name: 'tool_use', template: 'tools: {{ tools | length }}' },
        { name: 'rag', template: 'docs: {{ documents | length }}' },
      ],
    },
  });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.equal(tok.chatTemplate, 'plain');
  assert.equal(tok.applyChatTemplate(MESSAGES, { tokenize: false }), 'plain');
  assert.equal(tok.applyChatTemplate(MESSAGES, { tokenize: false, tools: [{ type: 'function' }] }), 'tools: 1');
  assert.equal(tok.applyChatTemplate(MESSAGES, { tokenize: false, chatTemplate: 'rag', documents: [{ text: 'a' }, { text: 'b' }] }), 'docs: 2');
});

test('the chatTemplate option may be Jinja source, rendered with special tokens, defaults and extra variables', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  const source = '{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|{{ enable_thinking }}';
  const rendered = tok.applyChatTemplate(MESSAGES, { tokenize: false, chatTemplate: source, templateKwargs: { enable_thinking: false } });
  assert.equal(rendered, '<|endoftext|>|<|endoftext|>|<|endoftext|>|true|true|false|false');
});

test('the rendered chat is tokenized without adding special tokens', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  const rendered = tok.applyChatTemplate(MESSAGES, { addGenerationPrompt: true, tokenize: false });
  assert.deepEqual(tok.applyChatTemplate(MESSAGES, { addGenerationPrompt: true }), tok.encode(rendered, { addSpecialTokens: false }));
});

test('a folder without a chat template fails on applyChatTemplate, naming the folder and both places a template can live', async () => {
  const dir = await tokenizerFolder();
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.equal(tok.chatTemplate, null);
  assert.throws(() => tok.applyChatTemplate(MESSAGES, { addGenerationPrompt: true }), (err: unknown) => {
    assert.ok(err instanceof TokenizerError);
    assert.equal(err.path, dir);
    assert.match(err.message, /has no chat template \(neither chat_template\.jinja nor a chat_template field in tokenizer_config\.json\)/);
    return true;
  });
});

test('raise_exception in a template becomes a TokenizerError carrying its message and the template file', async () => {
  const dir = await tokenizerFolder({
    'chat_template.jinja': "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}",
  });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.throws(() => tok.applyChatTemplate(MESSAGES), (err: unknown) => {
    assert.ok(err instanceof TokenizerError);
    assert.match(err.message, /chat_template\.jinja failed on these messages \(Conversations must start with a user message\)/);
    return true;
  });
});

test('a template that does not parse is reported when first used, not when the tokenizer loads', async () => {
  const dir = await tokenizerFolder({ 'chat_template.jinja': '{% for %}' });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.ok(tok.encode('still encodes').length > 0);
  assert.throws(() => tok.applyChatTemplate(MESSAGES), (err: unknown) => {
    assert.ok(err instanceof TokenizerError);
    assert.match(err.message, /chat_template\.jinja does not parse as Jinja/);
    return true;
  });
});

test('named templates without a "default" require choosing one', async () => {
  const dir = await tokenizerFolder({ 'tokenizer_config.json': { chat_template: [{ name: 'rag', template: 'x' }] } });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.throws(() => tok.applyChatTemplate(MESSAGES), /has chat templates named "rag" but none named "default"; pass chatTemplate/);
  assert.equal(tok.applyChatTemplate(MESSAGES, { tokenize: false, chatTemplate: 'rag' }), 'x');
});
