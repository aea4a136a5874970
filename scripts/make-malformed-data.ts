/**
 * The malformed-input corpus of `loraforge train`: JSONL files, tokenizer folders (tokenizer.json,
 * tokenizer_config.json and their neighbours), model weights and resume state (a run folder with one file of its
 * checkpoint damaged), each with the outcome train must give. test/cli/malformed-corpus.test.ts runs every case.
 *
 * Usage: node dist/scripts/make-malformed-data.js <folder>   (writes the cases and <folder>/cases.json)
 */
import { cp, mkdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../src/index.js';
import { runCli } from '../src/cli/run-cli.js';

export interface CorpusCase {
  name: string;
  /** The arguments after `train`. */
  args: string[];
  /** The exit code train must give. */
  code: number;
  /**
   * For a refusal: what its one sentence starts with (the file it names; for a stopped run, the step), and a regex
   * source the rest matches; null: accepted.
   */
  refusal: { subject: string; reason: string } | null;
  /** The output folder: a refused case must leave it as it was (absent when it was absent). */
  output: string;
}

export interface CapturedRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** runCli with console and stdout captured instead of printed (the corpus runs in one process). */
export async function runCaptured(argv: readonly string[]): Promise<CapturedRun> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = { log: console.log, error: console.error, write: process.stdout.write };
  console.log = (...a: unknown[]) => void out.push(`${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void err.push(`${a.join(' ')}\n`);
  process.stdout.write = ((chunk: string | Uint8Array) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    const code = await runCli(argv);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    Object.assign(console, { log: saved.log, error: saved.error });
    process.stdout.write = saved.write;
  }
}

/** Tiny settings every case trains with: one step of two examples. */
const TINY = ['--max-steps', '1', '--batch-size', '2', '--seq-len', '32', '--save-steps', '0', '--logging-steps', '1', '--samples', '0'];

type Json = Record<string, unknown>;
const lines = (...rows: readonly unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
const pc = (i: number) => ({ prompt: `${'acdg'.slice(0, 1 + (i % 4))}>`, completion: [...'acdg'.slice(0, 1 + (i % 4))].reverse().join('') });
const VALID = Array.from({ length: 6 }, (_, i) => pc(i));
const chat = (role: string) => ({ messages: [{ role: 'user', content: 'ab' }, { role, content: 'ba' }] });
const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

/** The JSONL cases: a file's text or bytes, extra flags, and the refusal (file is the data file unless named). */
interface DataCase {
  name: string;
  data: string | Buffer | null;
  flags?: string[];
  /** Regex source of the reason after "<file>:<line>: " or "<file> "; null: accepted. */
  reason: string | null;
  validation?: string | Buffer | null;
  /** Words the sentence has before the file, where it does not start with it. */
  before?: string;
}

const DATA_CASES: DataCase[] = [
  { name: 'line-not-json', data: lines(pc(0), '{"prompt": "a"'), reason: ':2: the line is not valid JSON' },
  { name: 'line-array', data: lines(pc(0), '[1, 2]'), reason: ':2: the line is not a JSON object' },
  { name: 'line-number', data: lines('42', pc(0)), reason: ':1: the line is not a JSON object' },
  { name: 'line-string', data: lines(pc(0), '"text"'), reason: ':2: the line is not a JSON object' },
  { name: 'line-null', data: lines(pc(0), 'null'), reason: ':2: the line is not a JSON object' },
  { name: 'line-nan-literal', data: lines(pc(0), '{"prompt": NaN, "completion": "a"}'), reason: ':2: the line is not valid JSON' },
  { name: 'line-trailing-comma', data: lines(pc(0), '{"prompt": "a", "completion": "b",}'), reason: ':2: the line is not valid JSON' },
  { name: 'utf8-ff-byte', data: bytes(lines(pc(0)), '{"prompt": "a', [0xff], '", "completion": "b"}\n'), reason: ':2: the line is not valid UTF-8; save the file as UTF-8' },
  { name: 'utf8-overlong', data: bytes(lines(pc(0), pc(1)), '{"prompt": "', [0xc0, 0x80], '", "completion": "b"}\n'), reason: ':3: the line is not valid UTF-8' },
  { name: 'utf8-lone-continuation', data: bytes('{"prompt": "', [0x80], '", "completion": "b"}\n'), reason: ':1: the line is not valid UTF-8' },
  { name: 'utf8-cut-sequence', data: bytes(lines(pc(0)), '{"prompt": "', [0xe2, 0x82], '", "completion": "b"}\n'), reason: ':2: the line is not valid UTF-8' },
  { name: 'utf8-surrogate', data: bytes(lines(pc(0)), '{"prompt": "', [0xed, 0xa0, 0x80], '", "completion": "b"}\n'), reason: ':2: the line is not valid UTF-8' },
  { name: 'utf8-latin1-file', data: bytes('{"prompt": "caf', [0xe9], '", "completion": "b"}\n'), reason: ':1: the line is not valid UTF-8' },
  { name: 'line-over-limit', data: lines(pc(0), { prompt: 'a'.repeat(4096), completion: 'b' }), flags: ['--max-line-mib', '0.001'], reason: ':2: the line is longer than the line limit of 1049 bytes; split the example, raise --max-line-mib' },
  { name: 'last-line-over-limit-no-newline', data: `${lines(pc(0))}${JSON.stringify({ prompt: 'a'.repeat(4096), completion: 'b' })}`, flags: ['--max-line-mib', '0.001'], reason: ':2: the line is longer than the line limit' },
  { name: 'empty-file', data: '', reason: ' holds no examples; it needs one JSON object per line\\.' },
  { name: 'blank-lines-only', data: '\n\n  \n', reason: ' holds no examples; it needs one JSON object per line\\.' },
  { name: 'all-malformed-skipped', data: lines('x', '[1]'), flags: ['--skip-malformed'], reason: ' holds no examples \\(all 2 lines were malformed\\)' },
  { name: 'missing-file', data: null, reason: ' does not exist; pass a JSONL or parquet file, a folder of them, or a Hub dataset id' },
  { name: 'unknown-keys', data: lines({ question: 'a', answer: 'b' }), reason: ':1: cannot tell the data format from the keys "question", "answer"' },
  { name: 'empty-object', data: lines({}), reason: ':1: cannot tell the data format from the keys none' },
  { name: 'prompt-number', data: lines(pc(0), { prompt: 5, completion: 'a' }), reason: ':2: field "prompt" must be a string in the prompt_completion format \\(got 5\\)' },
  { name: 'completion-missing', data: lines(pc(0), { prompt: 'a', completion: 'b' }, { prompt: 'a', text: 'b' }), reason: ':3: field "completion" must be a string in the prompt_completion format \\(it is missing\\)' },
  { name: 'completion-null', data: lines(pc(0), { prompt: 'a', completion: null }), reason: ':2: field "completion" must be a string' },
  { name: 'text-object', data: lines({ text: { a: 1 } }), reason: ':1: field "text" must be a string in the text format' },
  { name: 'messages-empty', data: lines({ messages: [] }), reason: ':1: "messages" must be a non-empty list' },
  { name: 'messages-not-list', data: lines({ messages: 'hi' }), reason: ':1: "messages" must be a non-empty list' },
  { name: 'role-robot', data: lines(chat('assistant'), chat('robot')), reason: ':2: messages\\[1\\] has the role "robot"; the roles are system, developer, user, assistant, tool, ipython\\.' },
  { name: 'role-capitalised', data: lines(chat('Assistant')), reason: ':1: messages\\[1\\] has the role "Assistant"' },
  { name: 'role-missing', data: lines({ messages: [{ content: 'a' }] }), reason: ':1: messages\\[0\\] must be an object with string "role" and "content"' },
  { name: 'content-number', data: lines({ messages: [{ role: 'user', content: 3 }] }), reason: ':1: messages\\[0\\] must be an object with string "role" and "content"' },
  { name: 'message-string', data: lines({ messages: ['hello'] }), reason: ':1: messages\\[0\\] must be an object' },
  { name: 'alpaca-output-number', data: lines({ instruction: 'a', input: '', output: 1 }), reason: ':1: field "output" must be a string in the alpaca format' },
  { name: 'alpaca-without-output', data: lines({ instruction: 'a', input: 'b' }), reason: ':1: cannot tell the data format from the keys "instruction", "input"' },
  { name: 'declared-text-got-completion', data: lines(pc(0)), flags: ['--data-format', 'text'], reason: ':1: field "text" must be a string in the text format \\(it is missing\\)' },
  { name: 'declared-messages-got-text', data: lines({ text: 'a' }), flags: ['--data-format', 'messages'], reason: ':1: "messages" must be a non-empty list' },
  { name: 'mixed-formats', data: lines(pc(0), { text: 'a' }), reason: ':2: field "prompt" must be a string' },
  { name: 'no-target-within-seq-len', data: lines({ prompt: 'abcd '.repeat(40), completion: 'a' }), before: 'No training example of ', reason: ' keeps a loss target within seq-len 32; raise --seq-len\\.' },
  { name: 'validation-not-json', data: lines(...VALID), validation: lines(pc(0), 'oops'), reason: ':2: the line is not valid JSON' },
  { name: 'validation-missing', data: lines(...VALID), validation: null, reason: ' does not exist; pass a JSONL or parquet file, a folder of them, or a Hub dataset id' },
  { name: 'validation-robot', data: lines(chat('assistant'), chat('assistant')), validation: lines(chat('robot')), reason: ':1: messages\\[1\\] has the role "robot"' },
  { name: 'valid-prompt-completion', data: lines(...VALID), reason: null },
  { name: 'valid-bom-on-line-1', data: `\ufeff${lines(...VALID)}`, reason: null },
  { name: 'valid-bom-on-every-line', data: lines(...VALID.map((v) => `\ufeff${JSON.stringify(v)}`)), reason: null },
  { name: 'valid-crlf', data: lines(...VALID).replace(/\n/g, '\r\n'), reason: null },
  { name: 'valid-no-final-newline', data: lines(...VALID).trimEnd(), reason: null },
  { name: 'valid-messages', data: lines(chat('assistant'), { messages: [{ role: 'system', content: 'x' }, ...chat('assistant').messages] }), reason: null },
  { name: 'valid-skip-malformed', data: bytes(lines(...VALID, chat('robot'), 'x'), [0xff], '\n'), flags: ['--skip-malformed'], reason: null },
];

/** Tokenizer-folder cases: the fixture folder with tokenizer files changed (null: removed). */
interface TokenizerCase {
  name: string;
  file: string;
  edit: (files: { tokenizer: Json; config: Json }) => void | Record<string, string | null>;
  /** Regex source of what follows "<file>: " (or "<file> "); null: accepted. */
  reason: string | null;
  data?: string;
}

const model = (t: Json) => t['model'] as Json;
const vocab = (t: Json) => model(t)['vocab'] as Record<string, unknown>;
const merges = (t: Json) => model(t)['merges'] as unknown[];
const added = (t: Json) => t['added_tokens'] as Json[];
const AGAIN = '; download or save the tokenizer again\\.$';

const TOKENIZER_CASES: TokenizerCase[] = [
  { name: 'tokenizer-not-json', file: 'tokenizer.json', edit: () => ({ 'tokenizer.json': '{"model": ' }), reason: ' is not valid JSON \\(' },
  { name: 'tokenizer-array', file: 'tokenizer.json', edit: () => ({ 'tokenizer.json': '[]' }), reason: ' must hold a JSON object but holds an array' },
  { name: 'tokenizer-missing', file: 'tokenizer.json', edit: () => ({ 'tokenizer.json': null }), reason: ' does not exist; point fromPretrained at a model folder' },
  { name: 'vocab-id-1e9', file: 'tokenizer.json', edit: ({ tokenizer }) => void (vocab(tokenizer)['zz'] = 1e9), reason: `: model\\.vocab\\["zz"\\] is 1000000000, not a token id \\(an integer from 0 to 387.*${AGAIN}` },
  { name: 'vocab-id-negative', file: 'tokenizer.json', edit: ({ tokenizer }) => void (vocab(tokenizer)['a'] = -1), reason: ': model\\.vocab\\["a"\\] is -1, not a token id' },
  { name: 'vocab-id-fraction', file: 'tokenizer.json', edit: ({ tokenizer }) => void (vocab(tokenizer)['a'] = 1.5), reason: ': model\\.vocab\\["a"\\] is 1\\.5, not a token id' },
  { name: 'vocab-id-string', file: 'tokenizer.json', edit: ({ tokenizer }) => void (vocab(tokenizer)['a'] = '3'), reason: ': model\\.vocab\\["a"\\] is "3", not a token id' },
  { name: 'vocab-string', file: 'tokenizer.json', edit: ({ tokenizer }) => void (model(tokenizer)['vocab'] = 'abc'), reason: `: model\\.vocab of a BPE model must be an object of token to id, not "abc"${AGAIN}` },
  { name: 'vocab-list-for-bpe', file: 'tokenizer.json', edit: ({ tokenizer }) => void (model(tokenizer)['vocab'] = [['a', 0]]), reason: ': model\\.vocab of a BPE model must be an object' },
  { name: 'model-type-unknown', file: 'tokenizer.json', edit: ({ tokenizer }) => void (model(tokenizer)['type'] = 'Foo'), reason: `: model\\.type "Foo" is not a tokenizer model; the types are BPE, WordPiece, WordLevel, Unigram${AGAIN}` },
  { name: 'model-type-number', file: 'tokenizer.json', edit: ({ tokenizer }) => void (model(tokenizer)['type'] = 3), reason: ': model\\.type 3 is not a tokenizer model' },
  { name: 'model-missing', file: 'tokenizer.json', edit: ({ tokenizer }) => void delete tokenizer['model'], reason: ': "model" must be an object' },
  { name: 'model-type-missing-no-merges', file: 'tokenizer.json', edit: ({ tokenizer }) => void (delete model(tokenizer)['type'], delete model(tokenizer)['merges']), reason: ': model\\.type null is not a tokenizer model' },
  { name: 'merge-unknown-token', file: 'tokenizer.json', edit: ({ tokenizer }) => void merges(tokenizer).push(['qqq', 'a']), reason: `: model\\.merges\\[125\\] \\("qqq" \\+ "a"\\) needs the token "qqq", which model\\.vocab lacks${AGAIN}` },
  { name: 'merge-unknown-second', file: 'tokenizer.json', edit: ({ tokenizer }) => void merges(tokenizer).push('a zzz'), reason: ': model\\.merges\\[125\\] \\("a" \\+ "zzz"\\) needs the token "zzz"' },
  { name: 'merge-result-unknown', file: 'tokenizer.json', edit: ({ tokenizer }) => void merges(tokenizer).push('a c'), reason: ': model\\.merges\\[125\\] \\("a" \\+ "c"\\) needs the token "ac"' },
  { name: 'merge-one-part', file: 'tokenizer.json', edit: ({ tokenizer }) => void merges(tokenizer).push('a'), reason: ': model\\.merges\\[125\\] is "a", not an "a b" string or an \\[a, b\\] pair' },
  { name: 'merge-three-parts', file: 'tokenizer.json', edit: ({ tokenizer }) => void merges(tokenizer).push('a b c'), reason: ': model\\.merges\\[125\\] is "a b c", not an "a b" string' },
  { name: 'merge-numbers', file: 'tokenizer.json', edit: ({ tokenizer }) => void merges(tokenizer).unshift([1, 2]), reason: ': model\\.merges\\[0\\] is \\[1,2\\], not an "a b" string' },
  { name: 'merges-not-list', file: 'tokenizer.json', edit: ({ tokenizer }) => void (model(tokenizer)['merges'] = 'a b'), reason: ': model\\.merges must be a list' },
  { name: 'added-token-id-1e9', file: 'tokenizer.json', edit: ({ tokenizer }) => void (added(tokenizer)[2]!['id'] = 1e9), reason: ': added_tokens\\[2\\] \\("<\\|im_end\\|>"\\) has id 1000000000, not a token id' },
  { name: 'added-tokens-not-list', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['added_tokens'] = { a: 1 }), reason: ': "added_tokens" must be a list' },
  { name: 'added-token-no-content', file: 'tokenizer.json', edit: ({ tokenizer }) => void delete added(tokenizer)[0]!['content'], reason: ': added_tokens\\[0\\] must be an object with a string "content"' },
  { name: 'unk-token-unknown', file: 'tokenizer.json', edit: ({ tokenizer }) => void (model(tokenizer)['unk_token'] = '<unk>'), reason: ': model\\.unk_token "<unk>" is not a token of model\\.vocab' },
  { name: 'unigram-vocab-object', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['model'] = { type: 'Unigram', vocab: { a: 0 } }), reason: ': model\\.vocab of a Unigram model must be a list of \\[token, score\\] pairs' },
  { name: 'unigram-bad-pair', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['model'] = { type: 'Unigram', vocab: [['a', 'x']] }), reason: ': model\\.vocab\\[0\\] must be a \\[token, score\\] pair' },
  { name: 'unigram-unk-id', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['model'] = { type: 'Unigram', unk_id: 9, vocab: [['a', -1]] }), reason: ': model\\.unk_id 9 is not an index of model\\.vocab \\(0 to 0\\)' },
  { name: 'normalizer-unknown', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['normalizer'] = { type: 'Bogus' }), reason: ' was rejected by @huggingface/tokenizers \\(Unknown Normalizer type: Bogus\\)' },
  { name: 'pre-tokenizer-unknown', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['pre_tokenizer'] = { type: 'Bogus' }), reason: ' was rejected by @huggingface/tokenizers \\(Unknown PreTokenizer type: Bogus\\)' },
  { name: 'decoder-unknown', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['decoder'] = { type: 'Bogus' }), reason: ' was rejected by @huggingface/tokenizers \\(Unknown Decoder type: Bogus\\)' },
  { name: 'post-processor-unknown', file: 'tokenizer.json', edit: ({ tokenizer }) => void (tokenizer['post_processor'] = { type: 'Bogus' }), reason: ' was rejected by @huggingface/tokenizers \\(Unknown PostProcessor type: Bogus\\)' },
  { name: 'config-not-json', file: 'tokenizer_config.json', edit: () => ({ 'tokenizer_config.json': '{ bos_token: 1 }' }), reason: ' is not valid JSON \\(' },
  { name: 'config-array', file: 'tokenizer_config.json', edit: () => ({ 'tokenizer_config.json': '[1]' }), reason: ' must hold a JSON object but holds an array' },
  { name: 'config-eos-number', file: 'tokenizer_config.json', edit: ({ config }) => void (config['eos_token'] = 5), reason: ': eos_token must be a token\'s text or an object with a string "content", not 5; fix or delete that field\\.$' },
  { name: 'config-bos-list', file: 'tokenizer_config.json', edit: ({ config }) => void (config['bos_token'] = ['<s>']), reason: ': bos_token must be a token\'s text' },
  { name: 'config-pad-content-number', file: 'tokenizer_config.json', edit: ({ config }) => void (config['pad_token'] = { content: 5 }), reason: ': pad_token must be a token\'s text' },
  { name: 'config-chat-template-number', file: 'tokenizer_config.json', edit: ({ config }) => ({ 'chat_template.jinja': null, 'tokenizer_config.json': JSON.stringify({ ...config, chat_template: 5 }) }), reason: ' has a chat_template that is neither a string nor a list', data: 'chat' },
  { name: 'config-chat-template-entries', file: 'tokenizer_config.json', edit: ({ config }) => ({ 'chat_template.jinja': null, 'tokenizer_config.json': JSON.stringify({ ...config, chat_template: [{ name: 1 }] }) }), reason: ' has a chat_template that is neither a string nor a list', data: 'chat' },
  { name: 'special-tokens-map-not-json', file: 'special_tokens_map.json', edit: () => ({ 'special_tokens_map.json': 'nope' }), reason: ' is not valid JSON \\(' },
  { name: 'special-tokens-map-eos-object', file: 'special_tokens_map.json', edit: () => ({ 'special_tokens_map.json': '{"eos_token": {"text": "x"}}' }), reason: ': eos_token must be a token\'s text' },
  { name: 'generation-config-eos-strings', file: 'generation_config.json', edit: () => ({ 'generation_config.json': '{"eos_token_id": ["</s>"]}' }), reason: ' has eos_token_id \\["</s>"\\], which is neither a token id nor a list of token ids' },
  { name: 'valid-added-token-object-eos', file: 'tokenizer_config.json', edit: ({ config }) => void (config['eos_token'] = { content: '<|endoftext|>', special: true }), reason: null },
  { name: 'valid-merges-as-strings', file: 'tokenizer.json', edit: ({ tokenizer }) => void (model(tokenizer)['merges'] = merges(tokenizer).map((m) => (m as string[]).join(' '))), reason: null },
];

/** Resume cases: the base run folder with one file changed (`edit` returns new text, or null to delete it). */
interface ResumeCase {
  name: string;
  /** Relative to the run folder. */
  file: string;
  edit: (text: string) => string | null;
  reason: string;
  code?: number;
  /** The file the refusal names, when not `file` (a removed file named by the folder that lacks it). */
  names?: string;
}

const json = (f: (j: Json) => void) => (text: string) => {
  const j = JSON.parse(text) as Json;
  f(j);
  return JSON.stringify(j);
};
const DAMAGED = 'the checkpoint is damaged or from another run, so resume from an earlier checkpoint or start again with --overwrite\\.$';
const CK = 'checkpoint-1';

const RESUME_CASES: ResumeCase[] = [
  { name: 'trainer-state-not-json', file: `${CK}/trainer_state.json`, edit: () => '{"global_step": ', reason: ` is not valid JSON \\(.*\\); ${DAMAGED}` },
  { name: 'trainer-state-array', file: `${CK}/trainer_state.json`, edit: () => '[]', reason: ` must hold a JSON object, not \\[\\]; ${DAMAGED}` },
  { name: 'trainer-state-missing', file: `${CK}/trainer_state.json`, edit: () => null, names: CK, code: 2, reason: ' is not a checkpoint folder \\(no trainer_state\\.json\\)' },
  { name: 'global-step-string', file: `${CK}/trainer_state.json`, edit: json((j) => (j['global_step'] = 'x')), reason: `: "global_step" must be an integer >= 0, not "x"; ${DAMAGED}` },
  { name: 'global-step-negative', file: `${CK}/trainer_state.json`, edit: json((j) => (j['global_step'] = -1)), reason: ': "global_step" must be an integer >= 0, not -1' },
  { name: 'global-step-fraction', file: `${CK}/trainer_state.json`, edit: json((j) => (j['global_step'] = 1.5)), reason: ': "global_step" must be an integer >= 0, not 1\\.5' },
  { name: 'max-steps-missing', file: `${CK}/trainer_state.json`, edit: json((j) => delete j['max_steps']), reason: ': "max_steps" is missing' },
  { name: 'epoch-missing', file: `${CK}/trainer_state.json`, edit: json((j) => delete j['epoch']), reason: ': "epoch" is missing' },
  { name: 'epoch-negative', file: `${CK}/trainer_state.json`, edit: json((j) => (j['epoch'] = -2)), reason: ': "epoch" must be >= 0, not -2' },
  { name: 'log-history-not-list', file: `${CK}/trainer_state.json`, edit: json((j) => (j['log_history'] = 'x')), reason: ': "log_history" must be a list of log entries' },
  { name: 'log-history-string-value', file: `${CK}/trainer_state.json`, edit: json((j) => ((j['log_history'] as Json[])[0]!['loss'] = 'low')), reason: ': "log_history\\[0\\]\\.loss" must be a number or null, not "low"' },
  { name: 'log-history-entry-number', file: `${CK}/trainer_state.json`, edit: json((j) => (j['log_history'] = [3])), reason: ': "log_history\\[0\\]" must be an object of numbers' },
  { name: 'data-position-missing', file: `${CK}/trainer_state.json`, edit: json((j) => delete j['data_position']), reason: ': "data_position\\.epoch" is missing' },
  { name: 'batch-in-epoch-beyond-epoch', file: `${CK}/trainer_state.json`, edit: json((j) => ((j['data_position'] as Json)['batch_in_epoch'] = 99)), reason: ': "data_position\\.batch_in_epoch" is 99, but an epoch of this data has 3 micro-batches; resume with the data and --batch-size it was trained with\\.$' },
  { name: 'batch-in-epoch-negative', file: `${CK}/trainer_state.json`, edit: json((j) => ((j['data_position'] as Json)['batch_in_epoch'] = -1)), reason: ': "data_position\\.batch_in_epoch" must be an integer >= 0, not -1' },
  { name: 'tokens-seen-negative', file: `${CK}/trainer_state.json`, edit: json((j) => (j['num_input_tokens_seen'] = -5)), reason: ': "num_input_tokens_seen" must be an integer >= 0, not -5' },
  { name: 'best-metric-string', file: `${CK}/trainer_state.json`, edit: json((j) => (j['best_metric'] = 'x')), reason: ': "best_metric" must be a number or null, not "x"' },
  { name: 'best-checkpoint-number', file: `${CK}/trainer_state.json`, edit: json((j) => (j['best_model_checkpoint'] = 3)), reason: ': "best_model_checkpoint" must be a string or null, not 3' },
  { name: 'best-step-fraction', file: `${CK}/trainer_state.json`, edit: json((j) => (j['best_global_step'] = 0.5)), reason: ': "best_global_step" must be an integer >= 0, not 0\\.5' },
  { name: 'patience-counter-string', file: `${CK}/trainer_state.json`, edit: json((j) => (j['stateful_callbacks'] = { EarlyStoppingCallback: { attributes: { early_stopping_patience_counter: 'x' } } })), reason: ': "stateful_callbacks\\.EarlyStoppingCallback\\.attributes\\.early_stopping_patience_counter" must be an integer >= 0, not "x"' },
  { name: 'scheduler-not-json', file: `${CK}/scheduler.json`, edit: () => 'step_count: 1', reason: ` is not valid JSON \\(.*\\); ${DAMAGED}` },
  { name: 'scheduler-array', file: `${CK}/scheduler.json`, edit: () => '[]', reason: ' must hold a JSON object, not \\[\\]' },
  { name: 'scheduler-negative-steps', file: `${CK}/scheduler.json`, edit: json((j) => (j['step_count'] = -3)), reason: `: "step_count" must be an integer >= 0, not -3; ${DAMAGED}` },
  { name: 'scheduler-steps-string', file: `${CK}/scheduler.json`, edit: json((j) => (j['step_count'] = '1')), reason: ': "step_count" must be an integer >= 0, not "1"' },
  { name: 'scheduler-steps-mismatch', file: `${CK}/scheduler.json`, edit: json((j) => (j['step_count'] = 5)), reason: ': "step_count" is 5, but trainer_state\\.json\'s global_step is 1' },
  { name: 'scheduler-missing', file: `${CK}/scheduler.json`, edit: () => null, reason: ` is missing; ${DAMAGED}` },
  { name: 'rng-not-json', file: `${CK}/rng_state.json`, edit: () => '{', reason: ' is not valid JSON \\(' },
  { name: 'rng-three-words', file: `${CK}/rng_state.json`, edit: json((j) => (j['dropout'] = [1, 2, 3])), reason: `: "dropout" must be the dropout generator's four 32-bit words, not \\[1,2,3\\]; ${DAMAGED}` },
  { name: 'rng-word-too-large', file: `${CK}/rng_state.json`, edit: json((j) => (j['dropout'] = [1, 2, 3, 2 ** 32])), reason: ': "dropout" must be the dropout generator\'s four 32-bit words' },
  { name: 'rng-all-zero', file: `${CK}/rng_state.json`, edit: json((j) => (j['dropout'] = [0, 0, 0, 0])), reason: ': "dropout" must be the dropout generator\'s four 32-bit words' },
  { name: 'rng-null', file: `${CK}/rng_state.json`, edit: json((j) => (j['dropout'] = null)), reason: ': "dropout" must be the dropout generator\'s four 32-bit words, not null' },
  { name: 'pending-losses-string', file: `${CK}/rng_state.json`, edit: json((j) => (j['pending_losses'] = 'x')), reason: `: "pending_losses" must be a list of numbers, not "x"; ${DAMAGED}` },
  { name: 'pending-losses-strings', file: `${CK}/rng_state.json`, edit: json((j) => (j['pending_losses'] = ['a'])), reason: ': "pending_losses" must be a list of numbers' },
  { name: 'rng-missing', file: `${CK}/rng_state.json`, edit: () => null, reason: ' is missing' },
  { name: 'optimizer-missing', file: `${CK}/optimizer.safetensors`, edit: () => null, reason: ' does not exist' },
  { name: 'adapter-weights-missing', file: `${CK}/adapter_model.safetensors`, edit: () => null, names: CK, reason: ' has no adapter_model\\.safetensors' },
  { name: 'training-args-not-json', file: 'training_args.json', edit: () => '{"loraforge_options": ', reason: ' is not valid JSON \\(.*\\); the run folder is damaged, so start again with --overwrite\\.$' },
  { name: 'training-args-array', file: 'training_args.json', edit: () => '[]', reason: ' must hold a JSON object, not \\[\\]' },
  { name: 'remembered-options-string', file: 'training_args.json', edit: json((j) => (j['loraforge_options'] = 'x')), reason: ': "loraforge_options" must be an object of option names to values' },
  { name: 'remembered-lr-string', file: 'training_args.json', edit: json((j) => ((j['loraforge_options'] as Json)['lr'] = 'fast')), code: 2, reason: ' loraforge_options: field "lr" must be a number >= 0; got "fast"\\.$' },
  { name: 'remembered-unknown-option', file: 'training_args.json', edit: json((j) => ((j['loraforge_options'] as Json)['colour'] = 'red')), code: 2, reason: ' loraforge_options: unknown field "colour"' },
];

/** Binary damage to the checkpoint's safetensors files (their text is not JSON). */
interface BinaryCase {
  name: string;
  file: string;
  edit: (path: string) => Promise<void>;
  reason: string;
}

const BINARY_CASES: BinaryCase[] = [
  { name: 'optimizer-truncated', file: `${CK}/optimizer.safetensors`, edit: async (p) => truncate(p, 200), reason: ' is not a valid safetensors file: its header length \\d+ exceeds the 192 bytes that follow it' },
  { name: 'optimizer-steps-not-json', file: `${CK}/optimizer.safetensors`, edit: (p) => editSafetensorsMetadata(p, (m) => (m['steps'] = '{oops')), reason: ': the metadata "steps" is not JSON; the checkpoint is damaged or from another adapter' },
  { name: 'optimizer-steps-list', file: `${CK}/optimizer.safetensors`, edit: (p) => editSafetensorsMetadata(p, (m) => (m['steps'] = '[1]')), reason: ': the metadata "steps" must map parameter names to step counts' },
  { name: 'optimizer-step-negative', file: `${CK}/optimizer.safetensors`, edit: (p) => editSafetensorsMetadata(p, (m) => (m['steps'] = JSON.stringify(Object.fromEntries(Object.keys(JSON.parse(m['steps']!)).map((k) => [k, -1]))))), reason: ': the step count of ".*" is -1, not a positive integer' },
  { name: 'optimizer-unknown-parameter', file: `${CK}/optimizer.safetensors`, edit: (p) => editSafetensorsMetadata(p, (m) => (m['steps'] = JSON.stringify({ 'base_model.model.nothing.weight': 1 }))), reason: ': "base_model\\.model\\.nothing\\.weight" is not a trainable parameter of this model' },
  { name: 'adapter-weights-garbage', file: `${CK}/adapter_model.safetensors`, edit: (p) => writeFile(p, 'not a safetensors file'), reason: ' is not a valid safetensors file' },
];

/** Rewrites a safetensors file's __metadata__ (the data after the header is kept as is). */
export async function editSafetensorsMetadata(path: string, edit: (metadata: Record<string, string>) => void): Promise<void> {
  const bytes = await readFile(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  edit(header['__metadata__'] as Record<string, string>);
  const text = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  await writeFile(path, Buffer.concat([length, text, bytes.subarray(8 + headerLength)]));
}

/** A copy of the fixture model (other files linked) whose tensor `name` (float32) is all `value`. */
export async function modelWithValue(fixture: string, dir: string, name: string, value: number): Promise<void> {
  await linkModel(fixture, dir, ['model.safetensors']);
  const bytes = await readFile(join(fixture, 'model.safetensors'));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const info = header[name]!;
  if (info.dtype !== 'F32') throw new Error(`${name} of ${fixture} is ${info.dtype}; the corpus writes float32 values only.`);
  const start = 8 + headerLength + info.data_offsets[0];
  new Float32Array(bytes.buffer, bytes.byteOffset + start, (info.data_offsets[1] - info.data_offsets[0]) / 4).fill(value);
  await writeFile(join(dir, 'model.safetensors'), bytes);
}

/** A model folder whose files link to the fixture's, except `own` (written by the caller). */
async function linkModel(fixture: string, dir: string, own: readonly string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const name of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'chat_template.jinja']) {
    if (!own.includes(name)) await symlink(join(fixture, name), join(dir, name));
  }
}

/** Writes every case under `root` (which it empties first) and returns them; `fixture` is the tiny-llama folder. */
export async function makeMalformedCorpus(root: string, fixture: string): Promise<CorpusCase[]> {
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const cases: CorpusCase[] = [];
  const out = (name: string) => join(root, 'out', name);

  for (const c of DATA_CASES) {
    const data = join(root, 'data', `${c.name}.jsonl`);
    await mkdir(join(root, 'data'), { recursive: true });
    if (c.data !== null) await writeFile(data, c.data);
    const args = [...TINY, '--model', fixture, '--data', data, '--output', out(c.name), ...(c.flags ?? [])];
    let named = data;
    if (c.validation !== undefined) {
      named = join(root, 'data', `${c.name}.validation.jsonl`);
      if (c.validation !== null) await writeFile(named, c.validation);
      args.push('--validation-data', named);
    }
    cases.push({ name: `data/${c.name}`, args, code: c.reason === null ? 0 : 1, refusal: c.reason === null ? null : { subject: `${c.before ?? ''}${named}`, reason: c.reason }, output: out(c.name) });
  }

  const tokenizerJson = await readFile(join(fixture, 'tokenizer.json'), 'utf8');
  const configJson = await readFile(join(fixture, 'tokenizer_config.json'), 'utf8');
  const chatData = join(root, 'data', 'chat.jsonl');
  await writeFile(chatData, lines(chat('assistant'), chat('assistant')));
  const plainData = join(root, 'data', 'plain.jsonl');
  await writeFile(plainData, lines(...VALID));
  for (const c of TOKENIZER_CASES) {
    const dir = join(root, 'models', c.name);
    const files = tokenizerFiles(c, { tokenizer: JSON.parse(tokenizerJson) as Json, config: JSON.parse(configJson) as Json });
    await linkModel(fixture, dir, Object.keys(files));
    for (const [name, text] of Object.entries(files)) if (text !== null) await writeFile(join(dir, name), text);
    cases.push({
      name: `tokenizer/${c.name}`,
      args: [...TINY, '--model', dir, '--data', c.data === 'chat' ? chatData : plainData, '--output', out(c.name)],
      code: c.reason === null ? 0 : 1,
      refusal: c.reason === null ? null : { subject: join(dir, c.file), reason: c.reason },
      output: out(c.name),
    });
  }

  for (const [name, value] of [['weights-nan', NaN], ['weights-infinite', Infinity]] as const) {
    const dir = join(root, 'models', name);
    await modelWithValue(fixture, dir, 'model.norm.weight', value);
    cases.push({ name: `model/${name}`, args: [...TINY, '--model', dir, '--data', plainData, '--output', out(name)], code: 1, refusal: { subject: join(dir, 'model.safetensors'), reason: `: tensor "model.norm.weight" holds ${value} at element 0; the weights are corrupt` }, output: out(name) });
  }

  const base = join(root, 'resume-base');
  const made = await runCaptured(['train', ...TINY, '--max-steps', '2', '--save-steps', '1', '--model', fixture, '--data', plainData, '--output', base]);
  if (made.code !== 0) throw new Error(`The corpus's base run failed: ${made.stderr}`);
  const resumeCase = async (name: string, file: string, code: number, reason: string, names: string, damage: (path: string) => Promise<void>) => {
    const run = out(name);
    await cp(base, run, { recursive: true });
    await damage(join(run, file));
    cases.push({ name: `resume/${name}`, args: ['--output', run, '--resume'], code, refusal: { subject: join(run, names), reason }, output: run });
  };
  for (const c of RESUME_CASES) {
    await resumeCase(c.name, c.file, c.code ?? 1, c.reason, c.names ?? c.file, async (path) => {
      const text = c.edit(await readFile(path, 'utf8'));
      await (text === null ? rm(path) : writeFile(path, text));
    });
  }
  for (const c of BINARY_CASES) await resumeCase(c.name, c.file, 1, c.reason, c.file, c.edit);
  const intact = out('resume-intact');
  await cp(base, intact, { recursive: true });
  cases.push({ name: 'resume/valid-intact', args: ['--output', intact, '--resume'], code: 0, refusal: null, output: intact });
  return cases;
}

/** The tokenizer files a case writes (null: left out): the two JSON files as its edit changed them, or what it returned. */
function tokenizerFiles(c: TokenizerCase, files: { tokenizer: Json; config: Json }): Record<string, string | null> {
  const returned = c.edit(files) ?? {};
  return { 'tokenizer.json': JSON.stringify(files.tokenizer), 'tokenizer_config.json': JSON.stringify(files.config), ...returned };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2];
  if (root === undefined) {
    console.error('usage: node dist/scripts/make-malformed-data.js <folder>');
    process.exit(2);
  }
  const fixture = fileURLToPath(new URL('../../test/fixtures/tiny-llama', import.meta.url));
  const cases = await makeMalformedCorpus(resolve(root), fixture);
  await writeFile(join(root, 'cases.json'), `${JSON.stringify(cases, null, 2)}\n`);
  console.log(`${cases.length} cases (${cases.filter((c) => c.refusal === null).length} valid) written to ${root}; cases.json lists each with its expected outcome.`);
}
