import { UsageError } from './errors.js';

/** How one option is spelled and checked; the same spec serves command-line flags and config-file fields. */
export type OptionSpec =
  | { kind: 'string'; help: string; default?: string }
  | { kind: 'boolean'; help: string; default?: boolean }
  | { kind: 'number'; help: string; default?: number; integer?: boolean; min?: number; max?: number; exclusiveMax?: boolean }
  | { kind: 'enum'; help: string; values: readonly string[]; default?: string }
  /** A flag that may stand alone (true) or take a value (a path). */
  | { kind: 'flag-or-string'; help: string }
  /** JSON text of an object; a config file may give the mapping itself. The command's parser checks the object's contents. */
  | { kind: 'json-object'; help: string };

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
    if (!spec) {
      // Hugging Face's names (--learning-rate) point to the option they mean, as in config files.
      const aliases = Object.keys(CONFIG_ALIASES).filter((k) => CONFIG_ALIASES[k]! in specs).map((k) => k.replace(/_/g, '-'));
      const near = closest(name, [...Object.keys(specs), ...aliases]);
      const guess = near === null || near in specs ? near : CONFIG_ALIASES[near.replace(/-/g, '_')]!;
      throw new UsageError(guess !== null ? `Unknown option --${name}; did you mean --${guess}?` : `Unknown option --${name}; the options are ${Object.keys(specs).map((k) => `--${k}`).join(', ')}.`);
    }
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
    case 'json-object':
      return 'a JSON object (in a config file, a mapping)';
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
      // A config list (target_modules: [q_proj, v_proj]) is the comma list a flag gives.
      if (!fromText && Array.isArray(raw) && raw.length > 0 && raw.every((x) => (typeof x === 'string' && x !== '' && !x.includes(',')) || typeof x === 'number')) return raw.join(',');
      return fail();
    case 'flag-or-string':
      if (raw === true || (typeof raw === 'string' && raw !== '')) return raw;
      return fail();
    case 'json-object':
      if (typeof raw === 'string' && raw !== '') return raw;
      // A config mapping goes on as the JSON text a flag gives, so both meet the same checks (and are remembered alike).
      if (!fromText && typeof raw === 'object' && raw !== null && !Array.isArray(raw)) return JSON.stringify(raw);
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
 * Config keys are the flag names; snake_case spellings (lora_alpha) and Hugging Face's names (CONFIG_ALIASES) are
 * accepted too, one spelling per option. Unknown keys, wrong types
 * and values outside the allowed set are refused with a message that names the field and what it accepts.
 */
export function resolveOptions(specs: OptionSpecs, flags: ReadonlyMap<string, string | true>, config: Record<string, unknown> | null, configPath = 'config file'): OptionValues {
  const values: OptionValues = {};
  for (const { key, name, raw } of configEntries(specs, config ?? {}, configPath)) {
    if (raw === null) continue;
    values[name] = checkValue(specs[name]!, raw, `${configPath}: field "${key}"`, false);
  }
  for (const [name, raw] of flags) values[name] = checkValue(specs[name]!, raw, `--${name}`, true);
  for (const [name, spec] of Object.entries(specs)) {
    if (values[name] === undefined && 'default' in spec && spec.default !== undefined) values[name] = spec.default;
  }
  return values;
}

/**
 * Config-file keys in Hugging Face's spellings (TrainingArguments, LoraConfig, TRL's SFTConfig) and the loraforge
 * option each one sets; any other key is read with underscores as dashes (lora_alpha is lora-alpha).
 */
export const CONFIG_ALIASES: Readonly<Record<string, string>> = {
  learning_rate: 'lr',
  num_train_epochs: 'epochs',
  per_device_train_batch_size: 'batch-size',
  gradient_accumulation_steps: 'grad-accum',
  lr_scheduler_type: 'lr-scheduler',
  output_dir: 'output',
  max_seq_length: 'seq-len',
};

/** The option a config key sets: its Hugging Face alias, else the key with underscores as dashes. */
function configName(specs: OptionSpecs, key: string): string {
  const alias = CONFIG_ALIASES[key];
  return alias !== undefined && alias in specs ? alias : key.replace(/_/g, '-');
}

/** A config mapping's entries by the option they set; unknown keys and one option set under two spellings are refused. */
function configEntries(specs: OptionSpecs, config: Record<string, unknown>, configPath: string): { key: string; name: string; raw: unknown }[] {
  const seen = new Map<string, string>();
  const out: { key: string; name: string; raw: unknown }[] = [];
  for (const [key, raw] of Object.entries(config)) {
    const name = configName(specs, key);
    if (!specs[name] || name === 'config') {
      const fields = Object.keys(specs).filter((k) => k !== 'config');
      const spellings = [...fields, ...fields.map((k) => k.replace(/-/g, '_')), ...Object.keys(CONFIG_ALIASES).filter((k) => configName(specs, k) in specs)];
      const guess = closest(key, spellings);
      throw new UsageError(guess !== null ? `${configPath}: unknown field "${key}"; did you mean "${guess}"?` : `${configPath}: unknown field "${key}"; the fields are ${fields.join(', ')}.`);
    }
    const other = seen.get(name);
    if (other !== undefined) throw new UsageError(`${configPath}: fields "${other}" and "${key}" both set ${name}; give one of them.`);
    seen.set(name, key);
    out.push({ key, name, raw });
  }
  return out;
}

/** A config mapping with every key as the option name it sets (checked as resolveOptions checks it), for merging with others. */
export function normalizeConfig(specs: OptionSpecs, config: Record<string, unknown>, configPath = 'config file'): Record<string, unknown> {
  return Object.fromEntries(configEntries(specs, config, configPath).map((e) => [e.name, e.raw]));
}

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The candidate nearest to `word` (case-insensitive edit distance, at most a third of its length, at least 2), or null. */
export function closest(word: string, candidates: readonly string[]): string | null {
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d <= limit && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Help text: one entry per option, with its type and default. */
export function optionsHelp(specs: OptionSpecs): string {
  return Object.entries(specs)
    .map(([name, spec]) => {
      const def = 'default' in spec && spec.default !== undefined ? ` (default ${spec.default})` : '';
      const type = spec.kind === 'enum' ? spec.values.join('|') : spec.kind === 'number' && spec.integer ? 'integer' : spec.kind === 'flag-or-string' ? 'path' : spec.kind === 'json-object' ? 'json' : spec.kind;
      const kind = spec.kind === 'boolean' ? '' : spec.kind === 'flag-or-string' ? ` [<${type}>]` : ` <${type}>`;
      return `  --${name}${kind}\n      ${spec.help}${def}`;
    })
    .join('\n');
}

/** Every command's --help in one layout: usage line, one-line description, options with types and defaults. */
export function commandHelp(usage: string, description: string, specs: OptionSpecs): string {
  return `usage: loraforge ${usage}\n\n${description}\n\noptions:\n${optionsHelp(specs)}`;
}
