import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ToolCallStream } from '../../src/serve/tools/tool-call-stream.js';
import { TOOL_CALL_SYNTAXES, toolCallSyntaxOf, type ParsedToolCall } from '../../src/serve/tools/tool-call-syntax.js';
import { fixturePath } from '../helpers/fixtures.js';

function syntax(name: string) {
  return TOOL_CALL_SYNTAXES.find((s) => s.name === name)!;
}

/** The content and calls a whole output parses to, pushed as `pieces`. */
function parse(name: string, pieces: readonly string[], maxCalls = Infinity): { content: string; calls: ParsedToolCall[] } {
  const stream = new ToolCallStream(syntax(name), maxCalls);
  let content = '';
  const calls: ParsedToolCall[] = [];
  for (const step of [...pieces.map((p) => stream.push(p)), stream.finish()]) {
    content += step.content;
    calls.push(...step.calls);
  }
  return { content, calls };
}

const weather = { name: 'get_weather', arguments: '{"city":"Zürich"}' };
const time = { name: 'get_time', arguments: '{"zone":"CET"}' };

/** Each case: syntax, the model's exact output, what it parses to. */
const CASES: [string, string, string, ParsedToolCall[]][] = [
  ['hermes', 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>', 'Let me look.', [weather]],
  ['hermes', '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>', '', [weather, time]],
  ['hermes', '<think>\n\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n', '<think>\n\n</think>', [weather]],
  ['hermes', 'No call: <tool_call>{"name": get_weather}</tool_call> done', 'No call: <tool_call>{"name": get_weather}</tool_call> done', []],
  ['hermes', 'Plain text, nothing more.\n', 'Plain text, nothing more.\n', []],
  ['phi4_mini', '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Zürich"}}, {"name": "get_time", "arguments": {"zone": "CET"}}]<|/tool_call|>', '', [weather, time]],
  ['llama3_json', '{"name": "get_weather", "parameters": {"city": "Zürich"}}', '', [weather]],
  ['llama3_json', '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Zürich"}}; {"name": "get_time", "parameters": {"zone": "CET"}}', '', [weather, time]],
  ['llama3_json', 'It is {"name": "get_weather", "parameters": {}} here', 'It is {"name": "get_weather", "parameters": {}} here', []],
  ['llama3_json', '{"temperature": 21}', '{"temperature": 21}', []],
  ['mistral', 'Checking.[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Zürich"}}, {"name": "get_time", "arguments": {"zone": "CET"}}]', 'Checking.', [weather, time]],
  ['mistral', '[TOOL_CALLS]get_weather[ARGS]{"city":"Zürich"}[TOOL_CALLS]get_time[ARGS]{"zone":"CET"}', '', [weather, time]],
];

describe('tool-call parsing of each family\'s exact output', () => {
  for (const [name, output, content, calls] of CASES) {
    it(`${name}: ${JSON.stringify(output)} parses to content ${JSON.stringify(content)} and ${calls.length} call(s)`, () => {
      assert.deepEqual(parse(name, [output]), { content, calls });
    });
  }

  it('streamed one character at a time, every output parses to what it parses to whole', () => {
    for (const [name, output, content, calls] of CASES) assert.deepEqual(parse(name, [...output]), { content, calls }, `${name}: ${output}`);
  });

  it('holds back text that may open a call and releases it once it cannot', () => {
    const stream = new ToolCallStream(syntax('hermes'), Infinity);
    assert.deepEqual(stream.push('Hello <tool'), { content: 'Hello', calls: [] });
    assert.deepEqual(stream.push('box>'), { content: ' <toolbox>', calls: [] });
  });

  it('passes a call on as soon as its closing tag arrives, before the output ends', () => {
    const stream = new ToolCallStream(syntax('hermes'), Infinity);
    assert.deepEqual(stream.push('<tool_call>{"name": "get_weather", "arguments": {"city": "Zürich"}}'), { content: '', calls: [] });
    assert.deepEqual(stream.push('</tool_call>'), { content: '', calls: [weather] });
    assert.equal(stream.called, true);
  });

  it('keeps only the first call under maxCalls 1 (parallel_tool_calls false)', () => {
    assert.deepEqual(parse('hermes', [CASES[1]![1]], 1), { content: '', calls: [weather] });
  });

  it('picks the syntax from the chat template: Qwen3 is Hermes, llama.cpp\'s Phi-4-mini is phi4_mini, plain ChatML has none', async () => {
    const template = async (file: string) => readFile(fixturePath(file), 'utf8');
    assert.equal(toolCallSyntaxOf(await template('templates/Qwen-Qwen3-0.6B.jinja'))?.name, 'hermes');
    assert.equal(toolCallSyntaxOf(await template('templates/llama-cpp-microsoft-Phi-4-mini-instruct.jinja'))?.name, 'phi4_mini');
    assert.equal(toolCallSyntaxOf(await template('tiny-llama/chat_template.jinja')), null);
    assert.equal(toolCallSyntaxOf('{%- if tools %}{{- "<|python_tag|>" }}{% endif %}')?.name, 'llama3_json');
    assert.equal(toolCallSyntaxOf('{{- "[TOOL_CALLS]" + (message.tool_calls | tojson) }}')?.name, 'mistral');
  });

  it('gives Mistral 9-character alphanumeric call ids and the others OpenAI-style ones', () => {
    assert.match(syntax('mistral').newId(), /^[a-zA-Z0-9]{9}$/);
    assert.match(syntax('hermes').newId(), /^call_[a-zA-Z0-9]{24}$/);
  });
});
