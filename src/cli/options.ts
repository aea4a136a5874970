import { UsageError } from './errors.js';

/** How one option is spelled and checked; the same spec serves command-line flags and config-file fields. */
export type OptionSpec =
  | { kind: 'string'; help: string; default?: string }
  | { kind: 'boolean'; help: string; default?: boolean }
  | { kind: 'number'; help: string; default?: number; integer?: boolean; min?: number; max?: number; exclusiveMax?: boolean }
  | { kind: 'enum'; help: string; values: readonly string[]; default?: string }
  /** A flag that may stand alone (true) or take a value (a path). */
  | { kind: 'flag-or-string'; help: string };

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;
export type OptionValue = string | number | boolean;
export type OptionValues = Record<string, OptionValue | undefined>;

/** Command-line words split into flags (by their --name) and positional arguments; no checking yet. */
export interface RawArgs {
  flags: Map<string, string | true>;
  positionals: string[];
}

export function splitArgs(argv: readonly string[], specs: OptionSpecs): RawArgs {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (!word.startsWith('--')) {
      positionals.push(word);
      continue;
    }
    const eq = word.indexOf('=');
    const name = word.slice(2, eq < 0 ? undefined : eq);
    const spec = specs[name];
    if (!spec) throw new UsageError(`Unknown option --${name}; the options are ${Object.keys(specs).map((k) => `--${k}`).join(', ')}.`);
    if (eq >= 0) flags.set(name, word.slice(eq + 1));
    else if (spec.kind === 'boolean') flags.set(name, true);
    else if (spec.kind === 'flag-or-string') {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) flags.set(name, argv[++i]!);
      else flags.set(name, true);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`Option --${name} needs a value (${describe(spec)}).`);
      flags.set(name, argv[++i]!);
    }
  }
  return { flags, positionals };
}

function describe(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'enum':
      return `one of ${spec.values.join(', ')}`;
    case 'number':
      return `${spec.integer ? 'an integer' : 'a number'}${spec.min !== undefined ? ` >= ${spec.min}` : ''}${spec.max !== undefined ? ` ${spec.exclusiveMax ? '<' : '<='} ${spec.max}` : ''}`;
    case 'boolean':
      return 'true or false';
    default:
      return 'a string';
  }
}

/** Checks one value against its spec; `label` names it as the user wrote it ("--lr" or "config field lr"). */
function checkValue(spec: OptionSpec, raw: unknown, label: string, fromText: boolean): OptionValue {
  const fail = (): never => {
    throw new UsageError(`${label} must be ${describe(spec)}; got ${JSON.stringify(raw)}.`);
  };
  switch (spec.kind) {
    case 'string':
      if (typeof raw === 'string' && raw !== '') return raw;
      if (!fromText && typeof raw === 'number') return String(raw);
      return fail();
    case 'flag-or-string':
      if (raw === true || (typeof raw === 'string' && raw !== '')) return raw;
      return fail();
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (fromText && (raw === 'true' || raw === 'false')) return raw === 'true';
      return fail();
    case 'enum':
      if (typeof raw === 'string' && spec.values.includes(raw)) return raw;
      return fail();
    case 'number': {
      const n = typeof raw === 'number' ? raw : fromText && typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || (spec.integer && !Number.isInteger(n))) return fail();
      if (spec.min !== undefined && n < spec.min) return fail();
      if (spec.max !== undefined && (spec.exclusiveMax ? n >= spec.max : n > spec.max)) return fail();
      return n;
    }
  }
}

/**
 * The one place options are validated: config-file fields first, command-line flags over them, then defaults.
 * Config keys are the flag names; snake_case spellings (lora_alpha) are accepted too. Unknown keys, wrong types
 * and values outside the allowed set are refused with a message that names the field and what it accepts.
 */
export function resolveOptions(specs: OptionSpecs, flags: ReadonlyMap<string, string | true>, config: Record<string, unknown> | null, configPath = 'config file'): OptionValues {
  const values: OptionValues = {};
  for (const [key, raw] of Object.entries(config ?? {})) {
    const name = key.replace(/_/g, '-');
    const spec = specs[name];
    if (!spec || name === 'config') {
      throw new UsageError(`${configPath}: unknown field "${key}"; the fields are ${Object.keys(specs).filter((k) => k !== 'config').join(', ')}.`);
    }
    if (raw === null) continue;
    values[name] = checkValue(spec, raw, `${configPath}: field "${key}"`, false);
  }
  for (const [name, raw] of flags) values[name] = checkValue(specs[name]!, raw, `--${name}`, true);
  for (const [name, spec] of Object.entries(specs)) {
    if (values[name] === undefined && 'default' in spec && spec.default !== undefined) values[name] = spec.default;
  }
  return values;
}

/** Help text: one line per option. */
export function optionsHelp(specs: OptionSpecs): string {
  return Object.entries(specs)
    .map(([name, spec]) => {
      const def = 'default' in spec && spec.default !== undefined ? ` (default ${spec.default})` : '';
      const kind = spec.kind === 'boolean' || spec.kind === 'flag-or-string' ? '' : ` <${spec.kind === 'enum' ? spec.values.join('|') : spec.kind}>`;
      return `  --${name}${kind}\n      ${spec.help}${def}`;
    })
    .join('\n');
}
