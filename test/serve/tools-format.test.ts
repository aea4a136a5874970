import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChatCompletionStream } from 'openai/lib/ChatCompletionStream';
import type { ChoiceDelta } from '../../src/serve/choice-output.js';
import type { GenerationResult } from '../../src/serve/generation-job.js';
import type { LogprobEntry } from '../../src/serve/logprob-entry.js';
import { chatFormat } from '../../src/serve/openai-format.js';
import { TOOL_CALL_SYNTAXES } from '../../src/serve/tools/tool-call-syntax.js';

const HERMES = TOOL_CALL_SYNTAXES.find((s) => s.name === 'hermes')!;
const OUTPUT = 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>';
const CALLS = [
  { name: 'get_weather', arguments: '{"city":"Zürich"}' },
  { name: 'get_time', arguments: '{"zone":"CET"}' },
];

/** The output as the generation hands it over, 5 characters a delta, each with one log-probability entry. */
function deltas(text: string, withLogprobs: boolean): ChoiceDelta[] {
  const pieces = text.match(/[\s\S]{1,5}/g)!;
  return pieces.map((piece, i) => ({ index: 0, text: piece, logprobs: withLogprobs ? [entry(i)] : null }));
}

function entry(i: number): LogprobEntry {
  return { token: `t${i}`, bytes: [116], logprob: -i, top: [], offset: i };
}

function result(text: string): GenerationResult {
  return { choices: [{ index: 0, text, finishReason: 'stop', logprobs: null }], usage: { prompt_tokens: 3, completion_tokens: 30, total_tokens: 33 } };
}

interface Chunk {
  choices: { delta: { content?: string; tool_calls?: object[] }; logprobs: { content: object[] } | null; finish_reason: string | null }[];
}

function streamed(maxCalls: number, withLogprobs = false): Chunk[] {
  const format = chatFormat('m', false, { syntax: HERMES, maxCalls });
  return [...format.opening(1), ...deltas(OUTPUT, withLogprobs).flatMap((d) => format.delta(d)), ...format.closing(result(OUTPUT))] as Chunk[];
}

describe('chat tool_calls as OpenAI sends them, whole and streamed', () => {
  it('answers the whole output as content and tool_calls with ids, finish_reason tool_calls', () => {
    const body = chatFormat('m', false, { syntax: HERMES, maxCalls: Infinity }).body(result(OUTPUT)) as { choices: { message: { content: string; tool_calls: { id: string; type: string; function: object }[] }; finish_reason: string }[] };
    const [choice] = body.choices;
    assert.equal(choice!.message.content, 'Let me look.');
    assert.deepEqual(choice!.message.tool_calls.map((c) => ({ type: c.type, function: c.function })), CALLS.map((f) => ({ type: 'function', function: f })));
    for (const call of choice!.message.tool_calls) assert.match(call.id, /^call_[a-zA-Z0-9]{24}$/);
    assert.equal(choice!.finish_reason, 'tool_calls');
  });

  it('streams each call as its index, id and name with empty arguments, then its arguments', () => {
    const calls = streamed(Infinity).flatMap((c) => c.choices[0]?.delta.tool_calls ?? []) as { id?: string }[];
    assert.deepEqual(calls.map(({ id: _, ...rest }) => rest), [
      { index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } },
      { index: 0, function: { arguments: CALLS[0]!.arguments } },
      { index: 1, type: 'function', function: { name: 'get_time', arguments: '' } },
      { index: 1, function: { arguments: CALLS[1]!.arguments } },
    ]);
    assert.equal(streamed(Infinity).at(-1)!.choices[0]!.finish_reason, 'tool_calls');
  });

  it('streams what the official client assembles into the same message as the whole answer', async () => {
    const ndjson = new ReadableStream({
      start(controller) {
        for (const chunk of streamed(Infinity)) controller.enqueue(new TextEncoder().encode(`${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm', ...chunk })}\n`));
        controller.close();
      },
    });
    const completion = await ChatCompletionStream.fromReadableStream(ndjson).finalChatCompletion();
    const message = completion.choices[0]!.message;
    assert.equal(message.content, 'Let me look.');
    assert.deepEqual(message.tool_calls!.map((c) => c.type === 'function' && c.function), CALLS);
    assert.equal(completion.choices[0]!.finish_reason, 'tool_calls');
  });

  it('returns only the first call under parallel_tool_calls false, whole and streamed', () => {
    const body = chatFormat('m', false, { syntax: HERMES, maxCalls: 1 }).body(result(OUTPUT)) as { choices: { message: { tool_calls: { function: object }[] } }[] };
    assert.deepEqual(body.choices[0]!.message.tool_calls.map((c) => c.function), [CALLS[0]]);
    assert.equal(streamed(1).flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).length, 2);
  });

  it('sends every token\'s log-probability once, on chunks after their text is known', () => {
    const sent = streamed(Infinity, true).flatMap((c) => c.choices[0]?.logprobs?.content ?? []);
    assert.deepEqual(sent, deltas(OUTPUT, true).map((_, i) => ({ token: `t${i}`, logprob: -i, bytes: [116], top_logprobs: [] })));
  });

  it('answers an output without calls as plain content with finish_reason stop', () => {
    const body = chatFormat('m', false, { syntax: HERMES, maxCalls: Infinity }).body(result('Just text.')) as { choices: { message: object; finish_reason: string }[] };
    assert.deepEqual(body.choices[0], { index: 0, message: { role: 'assistant', content: 'Just text.', refusal: null }, logprobs: null, finish_reason: 'stop' });
  });
});
