import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { TokenizerError } from './errors.js';
import type { ChatTemplateSource } from './chat-template-selection.js';

/**
 * A chat template compiled once, on first use, so a tokenizer whose template we cannot parse still encodes text.
 * Rendering follows transformers' environment (utils/chat_template_utils.py): jinja2 with trim_blocks and
 * lstrip_blocks, loop controls, `{% generation %}` blocks rendered as their body, a `tojson` that is
 * json.dumps(ensure_ascii=False) with its indent / separators / sort_keys options, and the globals
 * `raise_exception(message)` and `strftime_now(format)`. @huggingface/jinja does most of this itself; where it
 * departs from jinja2 (found rendering real templates against transformers, test/fixtures/templates/) we follow
 * jinja2:
 * - strftime_now is Python's C-locale strftime (the library names months and days in the process locale);
 * - render variables shadow globals (the library's Template.render refuses a variable named like a global);
 * - `s.strip(chars)`, `lstrip(chars)`, `rstrip(chars)` strip those characters (the library strips whitespace
 *   whatever the argument: Qwen3's `content.lstrip('\n')` would eat the content's leading spaces);
 * - a for loop over an undefined value runs zero times (the library throws: llama.cpp's Phi-4-mini template
 *   loops over `message.tool_calls` on every message).
 */
export class ChatTemplate {
  private compiled: Template | null = null;

  constructor(private readonly template: ChatTemplateSource) {}

  /** Where the template came from (a file, a named template in tokenizer_config.json, or the chatTemplate option). */
  get origin(): string {
    return this.template.origin;
  }

  get source(): string {
    return this.template.source;
  }

  /**
   * Renders with `variables` as the template's globals. A template refuses input by calling `raise_exception(message)`
   * (e.g. roles that do not alternate); that and any runtime failure become one TokenizerError carrying the message.
   */
  render(variables: Record<string, unknown>): string {
    const template = this.compile();
    try {
      // Template.render without its setupGlobals: the globals in a parent scope, so variables shadow them.
      const scope = new JinjaEnvironment(globalScope());
      for (const [name, value] of Object.entries(variables)) scope.set(name, value);
      return new Jinja2Interpreter(scope).run(template.parsed).value as string;
    } catch (err) {
      const { origin } = this.template;
      throw new TokenizerError(origin, `The chat template in ${origin} failed on these messages (${errorMessage(err)}); change the messages or variables to suit the template, or fix it.`);
    }
  }

  private compile(): Template {
    if (this.compiled === null) {
      const { source, origin } = this.template;
      try {
        this.compiled = new Template(source);
      } catch (err) {
        throw new TokenizerError(origin, `The chat template in ${origin} does not parse as Jinja (${errorMessage(err)}); fix the template or pass another as the chatTemplate option.`);
      }
    }
    return this.compiled;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The part of @huggingface/jinja's runtime that we call. Its .d.ts files import their siblings without file
 * extensions, which NodeNext resolution cannot follow (as with @huggingface/tokenizers, see tokenizer-engine.ts),
 * so its Environment and Interpreter come through untyped; these interfaces restore type checking at the boundary.
 */
interface Scope {
  set(name: string, value: unknown): unknown;
}
interface Value {
  type: string;
  value: unknown;
}
type Node = Record<string, any>;
interface JinjaInterpreter {
  evaluate(node: Node | undefined, scope: Scope): Value;
  run(program: unknown): Value;
}
const JinjaEnvironment = Environment as unknown as new (parent?: Scope) => Scope;
const JinjaInterpreter = Interpreter as unknown as new (scope: Scope) => JinjaInterpreter;

const STRIPS: Record<string, (text: string, chars: string) => string> = {
  strip: (text, chars) => stripEnd(stripStart(text, chars), chars),
  lstrip: stripStart,
  rstrip: stripEnd,
};

/** @huggingface/jinja's interpreter where it departs from jinja2 on templates we have met (see ChatTemplate). */
class Jinja2Interpreter extends JinjaInterpreter {
  override evaluate(n: Node | undefined, environment: Scope): Value {
    if (n?.['type'] === 'For') {
      const selected = n['iterable']?.type === 'SelectExpression';
      const iterable = selected ? n['iterable'].lhs : n['iterable'];
      if (super.evaluate(iterable, environment).type === 'UndefinedValue') {
        const empty = { type: 'ArrayLiteral', value: [] };
        return super.evaluate({ ...n, iterable: selected ? { ...n['iterable'], lhs: empty } : empty }, environment);
      }
    }
    if (n?.['type'] === 'CallExpression' && n['callee']?.type === 'MemberExpression' && n['args']?.length === 1) {
      const { property } = n['callee'];
      const strip = property?.type === 'Identifier' && Object.hasOwn(STRIPS, property.value) ? STRIPS[property.value] : undefined;
      if (strip !== undefined) {
        const text = super.evaluate(n['callee'].object, environment);
        const chars = super.evaluate(n['args'][0], environment);
        if (text.type === 'StringValue' && chars.type === 'StringValue') {
          return super.evaluate({ type: 'StringLiteral', value: strip(text.value as string, chars.value as string) }, environment);
        }
      }
    }
    return super.evaluate(n, environment);
  }
}

function stripStart(text: string, chars: string): string {
  let i = 0;
  while (i < text.length && chars.includes(text[i]!)) i++;
  return text.slice(i);
}

function stripEnd(text: string, chars: string): string {
  let i = text.length;
  while (i > 0 && chars.includes(text[i - 1]!)) i--;
  return text.slice(0, i);
}

/** jinja2's and transformers' globals, as @huggingface/jinja's setupGlobals declares them, with our strftime_now. */
function globalScope(): Scope {
  const scope = new JinjaEnvironment();
  const globals: Record<string, unknown> = {
    true: true,
    false: false,
    none: null,
    True: true,
    False: false,
    None: null,
    range: pythonRange,
    raise_exception: (message: unknown) => {
      throw new Error(String(message));
    },
    strftime_now: strftimeNow,
  };
  for (const [name, value] of Object.entries(globals)) scope.set(name, value);
  return scope;
}

function pythonRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

function strftimeNow(format: unknown): string {
  if (typeof format !== 'string') throw new Error(`strftime_now expects a format string, got ${typeof format}`);
  return strftime(new Date(), format);
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const pad = (n: number, width = 2, fill = '0'): string => String(n).padStart(width, fill);

function dayOfYear(d: Date): number {
  return Math.round((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 86_400_000) + 1;
}

/** Python's `datetime.strftime` in the C locale (what transformers' strftime_now gives), for local time. */
const DIRECTIVES: Record<string, (d: Date) => string> = {
  a: (d) => DAYS[d.getDay()]!.slice(0, 3),
  A: (d) => DAYS[d.getDay()]!,
  b: (d) => MONTHS[d.getMonth()]!.slice(0, 3),
  h: (d) => MONTHS[d.getMonth()]!.slice(0, 3),
  B: (d) => MONTHS[d.getMonth()]!,
  d: (d) => pad(d.getDate()),
  e: (d) => pad(d.getDate(), 2, ' '),
  H: (d) => pad(d.getHours()),
  I: (d) => pad(d.getHours() % 12 || 12),
  j: (d) => pad(dayOfYear(d), 3),
  m: (d) => pad(d.getMonth() + 1),
  M: (d) => pad(d.getMinutes()),
  p: (d) => (d.getHours() < 12 ? 'AM' : 'PM'),
  S: (d) => pad(d.getSeconds()),
  w: (d) => String(d.getDay()),
  y: (d) => pad(d.getFullYear() % 100),
  Y: (d) => String(d.getFullYear()),
  F: (d) => strftime(d, '%Y-%m-%d'),
  D: (d) => strftime(d, '%m/%d/%y'),
  T: (d) => strftime(d, '%H:%M:%S'),
  R: (d) => strftime(d, '%H:%M'),
  c: (d) => strftime(d, '%a %b %e %H:%M:%S %Y'),
  x: (d) => strftime(d, '%m/%d/%y'),
  X: (d) => strftime(d, '%H:%M:%S'),
  '%': () => '%',
};

/** Formats `date` as Python's strftime does in the C locale; directives it does not know are left as written. */
export function strftime(date: Date, format: string): string {
  return format.replace(/%(.)/gs, (directive, letter: string) => DIRECTIVES[letter]?.(date) ?? directive);
}
