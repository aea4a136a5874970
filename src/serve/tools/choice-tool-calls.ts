import { ToolCallStream, type ToolCallStep } from './tool-call-stream.js';
import type { ToolCallSyntax } from './tool-call-syntax.js';

/** How a request's output is read for tool calls: the model's syntax, and how many calls it may return. */
export interface ToolCalling {
  readonly syntax: ToolCallSyntax;
  /** 1 under parallel_tool_calls false. */
  readonly maxCalls: number;
}

/** A tool call as OpenAI's chat messages carry it, with its position among the choice's calls. */
export interface ChatToolCall {
  readonly index: number;
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

export interface ChatToolStep {
  readonly content: string;
  readonly calls: readonly ChatToolCall[];
}

/** One choice's output split into content and OpenAI tool calls as it grows, each call given its id. */
export class ChoiceToolCalls {
  private readonly stream: ToolCallStream;
  private count = 0;

  constructor(private readonly tools: ToolCalling) {
    this.stream = new ToolCallStream(tools.syntax, tools.maxCalls);
  }

  /** A whole output's content and calls. */
  static split(text: string, tools: ToolCalling): ChatToolStep {
    const choice = new ChoiceToolCalls(tools);
    const first = choice.push(text);
    const last = choice.finish();
    return { content: first.content + last.content, calls: [...first.calls, ...last.calls] };
  }

  get called(): boolean {
    return this.stream.called;
  }

  push(text: string): ChatToolStep {
    return this.named(this.stream.push(text));
  }

  finish(): ChatToolStep {
    return this.named(this.stream.finish());
  }

  private named(step: ToolCallStep): ChatToolStep {
    return {
      content: step.content,
      calls: step.calls.map((call) => ({ index: this.count++, id: this.tools.syntax.newId(), type: 'function', function: { name: call.name, arguments: call.arguments } })),
    };
  }
}
