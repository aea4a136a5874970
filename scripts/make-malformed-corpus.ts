// Writes a corpus of malformed model, adapter and bnb-4bit folders, each with the CLI command that must refuse it,
// plus a few valid inputs that must pass: `node dist/scripts/make-malformed-corpus.js OUTDIR` (after the build)
// writes OUTDIR/<case>/... and OUTDIR/manifest.json. test/io/malformed-corpus.test.ts runs every case.
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixturePath } from '../test/helpers/fixtures.js';
import { asInt32, editedFolder, poison, zerosTensor, type FolderEdit } from '../test/models/edited-checkpoint.js';

export interface CorpusCase {
  /** Folder name under the corpus root, e.g. "017-header-length-past-end". */
  readonly id: string;
  /** What is wrong (or, for a valid case, what it checks). */
  readonly what: string;
  /** Arguments of `loraforge` (after `node dist/src/cli/main.js`). */
  readonly argv: readonly string[];
  /** True for the inputs that must be accepted (exit 0). */
  readonly valid: boolean;
  /** The file the one-line error must name (null for a valid case). */
  readonly names: string | null;
  /** Paths the command would write, which must not exist after a refusal. */
  readonly outputs: readonly string[];
}

type Command = 'inspect' | 'generate' | 'merge' | 'quantize';

const LLAMA = fixturePath('tiny-llama');
const LORA = fixturePath('tiny-llama-lora');
const BNB = fixturePath('tiny-llama-bnb-4bit');
const WEIGHTS = 'model.safetensors';
const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const ADAPTER_CONFIG = 'adapter_config.json';
const Q0 = 'model.layers.0.self_attn.q_proj.weight';
const A0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
const B0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight';
const STATE0 = `${Q0}.quant_state.bitsandbytes__nf4`;

/** A safetensors file as bytes: its header parsed, its data section, and how to write it back with edits. */
interface RawFile {
  header: Record<string, unknown>;
  data: Uint8Array;
}

async function readRaw(path: string): Promise<RawFile> {
  const bytes = new Uint8Array(await readFile(path));
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Record<string, unknown>;
  return { header, data: bytes.subarray(8 + length) };
}

/** The 8-byte length (the header's true length unless `announce` lies), the header text, then `data`. */
function assemble(headerText: string | Uint8Array, data: Uint8Array, announce?: bigint): Uint8Array {
  const header = typeof headerText === 'string' ? new TextEncoder().encode(headerText) : headerText;
  const out = new Uint8Array(8 + header.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, announce ?? BigInt(header.byteLength), true);
  out.set(header, 8);
  out.set(data, 8 + header.byteLength);
  return out;
}

/** A raw edit: the bytes to write in place of the file, from the parsed original. */
type RawEdit = (file: RawFile) => Uint8Array;

/** The entry of tensor `name` in a parsed header, for edits of its dtype, shape or offsets. */
function entry(file: RawFile, name: string): Record<string, unknown> {
  return file.header[name] as Record<string, unknown>;
}

/** The name of the tensor whose data comes first and the one after it (for overlap and gap edits). */
function firstTwo(file: RawFile): [string, string] {
  const names = Object.keys(file.header).filter((k) => k !== '__metadata__');
  const start = (n: string) => (entry(file, n)['data_offsets'] as number[])[0]!;
  const sorted = names.sort((a, b) => start(a) - start(b));
  return [sorted[0]!, sorted[1]!];
}

function withHeader(edit: (file: RawFile) => void): RawEdit {
  return (file) => {
    edit(file);
    return assemble(JSON.stringify(file.header), file.data);
  };
}

/** Structural defects of a safetensors file, each a raw edit every reader of that file must refuse. */
const STRUCTURAL: readonly [string, RawEdit][] = [
  ['empty file', () => new Uint8Array(0)],
  ['file of 5 bytes, shorter than the length prefix', () => new Uint8Array(5)],
  ['header length one byte past the end of the file', (f) => assemble(JSON.stringify(f.header), f.data, BigInt(new TextEncoder().encode(JSON.stringify(f.header)).byteLength + f.data.byteLength + 1))],
  ['header length 2^63', (f) => assemble(JSON.stringify(f.header), f.data, 1n << 63n)],
  ['header length 2^64 - 1', (f) => assemble(JSON.stringify(f.header), f.data, (1n << 64n) - 1n)],
  ['header length short by 10 bytes, cutting the JSON', (f) => assemble(JSON.stringify(f.header), f.data, BigInt(new TextEncoder().encode(JSON.stringify(f.header)).byteLength - 10))],
  ['header length 0', (f) => assemble(JSON.stringify(f.header), f.data, 0n)],
  ['header that is not UTF-8', (f) => assemble(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), f.data)],
  ['header that is not JSON', (f) => assemble('{"a": [1, 2', f.data)],
  ['header that is a JSON array', (f) => assemble('[1, 2, 3]', f.data)],
  ['header that is JSON null', (f) => assemble('null', f.data)],
  ['header that is a JSON string', (f) => assemble('"model"', f.data)],
  ['__metadata__ that is a list', withHeader((f) => (f.header['__metadata__'] = ['pt']))],
  ['__metadata__ value that is a number', withHeader((f) => (f.header['__metadata__'] = { format: 7 }))],
  ['tensor entry that is a string', withHeader((f) => (f.header[firstTwo(f)[0]] = 'F32'))],
  ['tensor without a dtype', withHeader((f) => delete entry(f, firstTwo(f)[0])['dtype'])],
  ['dtype F8_E4M3, which loraforge cannot load', withHeader((f) => (entry(f, firstTwo(f)[0])['dtype'] = 'F8_E4M3'))],
  ['dtype "Q4", which is not a safetensors dtype', withHeader((f) => (entry(f, firstTwo(f)[0])['dtype'] = 'Q4'))],
  ['shape that is not a list', withHeader((f) => (entry(f, firstTwo(f)[0])['shape'] = 64))],
  ['negative dimension', withHeader((f) => (entry(f, firstTwo(f)[0])['shape'] = [-64, -16]))],
  ['fractional dimension', withHeader((f) => (entry(f, firstTwo(f)[0])['shape'] = [64.5, 16]))],
  ['dimension given as a string', withHeader((f) => (entry(f, firstTwo(f)[0])['shape'] = ['64', 16]))],
  ['shape whose element count overflows', withHeader((f) => (entry(f, firstTwo(f)[0])['shape'] = [2 ** 40, 2 ** 40]))],
  ['data_offsets with one number', withHeader((f) => (entry(f, firstTwo(f)[0])['data_offsets'] = [0]))],
  ['negative data_offsets', withHeader((f) => (entry(f, firstTwo(f)[0])['data_offsets'] = [-4, 100]))],
  ['data_offsets that end before they begin', withHeader((f) => (entry(f, firstTwo(f)[0])['data_offsets'] = [100, 4]))],
  ['shape x dtype larger than the byte span', withHeader((f) => {
    const e = entry(f, firstTwo(f)[0]);
    e['shape'] = [...(e['shape'] as number[]).slice(0, -1), (e['shape'] as number[]).at(-1)! * 2];
  })],
  ['dtype F16 over a span of F32 bytes', withHeader((f) => (entry(f, firstTwo(f)[0])['dtype'] = 'F16'))],
  ['second tensor starting inside the first', withHeader((f) => {
    const [, b] = firstTwo(f);
    const [start, stop] = entry(f, b)['data_offsets'] as number[];
    entry(f, b)['data_offsets'] = [start! - 4, stop! - 4];
  })],
  ['two tensors with the same offsets', withHeader((f) => {
    const [a, b] = firstTwo(f);
    entry(f, b)['data_offsets'] = entry(f, a)['data_offsets'];
    entry(f, b)['shape'] = entry(f, a)['shape'];
    entry(f, b)['dtype'] = entry(f, a)['dtype'];
  })],
  ['gap of 8 bytes between two tensors', (f) => {
    const [, b] = firstTwo(f);
    const cut = (entry(f, b)['data_offsets'] as number[])[0]!;
    for (const name of Object.keys(f.header)) {
      if (name === '__metadata__') continue;
      const offsets = entry(f, name)['data_offsets'] as number[];
      if (offsets[0]! >= cut) entry(f, name)['data_offsets'] = offsets.map((o) => o + 8);
    }
    const data = new Uint8Array(f.data.byteLength + 8);
    data.set(f.data.subarray(0, cut), 0);
    data.set(f.data.subarray(cut), cut + 8);
    return assemble(JSON.stringify(f.header), data);
  }],
  ['file truncated by one byte', (f) => assemble(JSON.stringify(f.header), f.data.subarray(0, f.data.byteLength - 1))],
  ['file truncated to half its data', (f) => assemble(JSON.stringify(f.header), f.data.subarray(0, f.data.byteLength >> 1))],
  ['16 bytes of garbage after the last tensor', (f) => assemble(JSON.stringify(f.header), new Uint8Array([...f.data, ...new Uint8Array(16).fill(0xab)]))],
];

/** config.json edits that contradict the tensors; `quantize` and `generate` must both refuse each. */
const CONTRADICTING: readonly [string, FolderEdit][] = [
  ['hidden_size 32', { json: { hidden_size: 32 } }],
  ['hidden_size 128', { json: { hidden_size: 128 } }],
  ['intermediate_size 128', { json: { intermediate_size: 128 } }],
  ['intermediate_size 320', { json: { intermediate_size: 320 } }],
  ['num_attention_heads 2', { json: { num_attention_heads: 2 } }],
  ['num_attention_heads 8', { json: { num_attention_heads: 8 } }],
  ['num_key_value_heads 4', { json: { num_key_value_heads: 4 } }],
  ['num_key_value_heads 1', { json: { num_key_value_heads: 1 } }],
  ['head_dim 8', { json: { head_dim: 8 } }],
  ['head_dim 32', { json: { head_dim: 32 } }],
  ['vocab_size 383', { json: { vocab_size: 383 } }],
  ['vocab_size 512', { json: { vocab_size: 512 } }],
  ['num_hidden_layers 1 over 2 layers', { json: { num_hidden_layers: 1 } }],
  ['num_hidden_layers 3 over 2 layers', { json: { num_hidden_layers: 3 } }],
  ['tie_word_embeddings true with a stored lm_head', { json: { tie_word_embeddings: true } }],
  ['attention_bias true without bias tensors', { json: { attention_bias: true } }],
  ['mlp_bias true without bias tensors', { json: { mlp_bias: true } }],
  ['lm_head.weight missing under tie_word_embeddings false', { tensors: (t) => void t.delete('lm_head.weight') }],
  ['embed_tokens missing', { tensors: (t) => void t.delete('model.embed_tokens.weight') }],
  ['final norm missing', { tensors: (t) => void t.delete('model.norm.weight') }],
  ['a projection missing', { tensors: (t) => void t.delete('model.layers.1.mlp.down_proj.weight') }],
  ['an extra tensor', { tensors: (t) => void t.set('model.extra.weight', zerosTensor([4, 4])) }],
  ['an extra layer 2 tensor', { tensors: (t) => void t.set('model.layers.2.input_layernorm.weight', zerosTensor([64])) }],
  ['lm_head stored as int32', { tensors: (t) => asInt32(t, 'lm_head.weight') }],
  ['a norm stored as int32', { tensors: (t) => asInt32(t, 'model.norm.weight') }],
  ['a dense projection stored as uint8 bytes', { tensors: (t) => void t.set(Q0, { dtype: 'uint8', shape: [64, 64], data: new Uint8Array(64 * 64) }) }],
];

/** Weights with non-finite values: loading refuses them (generate) and quantize refuses to quantize them. */
const NON_FINITE: readonly [string, FolderEdit][] = [
  ['NaN in a projection', { tensors: (t) => poison(t, Q0, Number.NaN, 7) }],
  ['Infinity in the embedding table', { tensors: (t) => poison(t, 'model.embed_tokens.weight', Number.POSITIVE_INFINITY, 11) }],
  ['-Infinity in a norm', { tensors: (t) => poison(t, 'model.layers.1.post_attention_layernorm.weight', Number.NEGATIVE_INFINITY) }],
  ['NaN in lm_head', { tensors: (t) => poison(t, 'lm_head.weight', Number.NaN, 100) }],
];

/** config.json values that are not sizes or numbers a model can have. */
const BAD_CONFIG: readonly [string, FolderEdit][] = [
  ['rope_theta -1', { json: { rope_theta: -1 } }],
  ['rope_parameters.rope_theta -1', { json: { rope_parameters: { rope_type: 'default', rope_theta: -1 } } }],
  ['rope_parameters.rope_theta 0', { json: { rope_parameters: { rope_type: 'default', rope_theta: 0 } } }],
  ['rope_theta NaN (Python literal)', { json: { rope_theta: '__X__' }, jsonText: (s) => s.replace('"__X__"', 'NaN') }],
  ['rms_norm_eps 0', { json: { rms_norm_eps: 0 } }],
  ['rms_norm_eps -1e-5', { json: { rms_norm_eps: -1e-5 } }],
  ['rms_norm_eps Infinity (Python literal)', { json: { rms_norm_eps: '__X__' }, jsonText: (s) => s.replace('"__X__"', 'Infinity') }],
  ['rms_norm_eps 1e400', { json: { rms_norm_eps: '__X__' }, jsonText: (s) => s.replace('"__X__"', '1e400') }],
  ['hidden_size 64.5', { json: { hidden_size: 64.5 } }],
  ['hidden_size -64', { json: { hidden_size: -64 } }],
  ['hidden_size "64"', { json: { hidden_size: '64' } }],
  ['num_attention_heads 0', { json: { num_attention_heads: 0 } }],
  ['num_hidden_layers -2', { json: { num_hidden_layers: -2 } }],
  ['vocab_size 0', { json: { vocab_size: 0 } }],
  ['intermediate_size 1e400', { json: { intermediate_size: '__X__' }, jsonText: (s) => s.replace('"__X__"', '1e400') }],
  ['max_position_embeddings -1', { json: { max_position_embeddings: -1 } }],
  ['attention_dropout 1.5', { json: { attention_dropout: 1.5 } }],
  ['eos_token_id 0.5', { json: { eos_token_id: 0.5 } }],
  ['config.json that is not JSON', { jsonText: () => '{"model_type": "llama",' }],
  ['config.json that is a list', { jsonText: () => '[]' }],
  ['model_type "gpt9", which no architecture has', { json: { model_type: 'gpt9', architectures: ['Gpt9ForCausalLM'] } }],
];

/** adapter_config.json values PEFT's LoraConfig refuses, or that contradict adapter_model.safetensors. */
const BAD_ADAPTER_CONFIG: readonly [string, FolderEdit][] = [
  ['r 0', { json: { r: 0 } }],
  ['r -8', { json: { r: -8 } }],
  ['r 8.5', { json: { r: 8.5 } }],
  ['r "8"', { json: { r: '8' } }],
  ['r 1e12 over rank-8 tensors', { json: { r: 1e12 } }],
  ['r 1e6 over rank-8 tensors', { json: { r: 1e6 } }],
  ['r 4 over rank-8 tensors', { json: { r: 4 } }],
  ['r NaN (Python literal)', { json: { r: '__X__' }, jsonText: (s) => s.replace('"__X__"', 'NaN') }],
  ['lora_alpha Infinity (Python literal)', { json: { lora_alpha: '__X__' }, jsonText: (s) => s.replace('"__X__"', 'Infinity') }],
  ['lora_dropout 1.5', { json: { lora_dropout: 1.5 } }],
  ['lora_dropout -0.1', { json: { lora_dropout: -0.1 } }],
  ['bias "some"', { json: { bias: 'some' } }],
  ['peft_type IA3', { json: { peft_type: 'IA3' } }],
  ['target_modules []', { json: { target_modules: [] } }],
  ['target_modules naming no module of the base', { json: { target_modules: ['qkv_proj'] } }],
  ['rank_pattern giving one layer rank 4', { json: { rank_pattern: { 'layers.1.mlp.up_proj': 4 } } }],
  ['use_qalora true', { json: { use_qalora: true } }],
  ['init_lora_weights "zeros"', { json: { init_lora_weights: 'zeros' } }],
  ['layers_to_transform [-1]', { json: { layers_to_transform: [-1] } }],
  ['adapter_config.json that is not JSON', { jsonText: () => '{"r": 8' }],
];

/** adapter_model.safetensors tensors that do not fit the adapter or hold non-finite values. */
const BAD_ADAPTER_TENSORS: readonly [string, FolderEdit][] = [
  ['NaN in lora_A', { tensors: (t) => poison(t, A0, Number.NaN, 2) }],
  ['Infinity in lora_B', { tensors: (t) => poison(t, B0, Number.POSITIVE_INFINITY) }],
  ['lora_A stored as int32', { tensors: (t) => asInt32(t, A0) }],
  ['lora_B missing', { tensors: (t) => void t.delete(B0) }],
  ['use_dora true without the magnitude tensors it implies', { json: { use_dora: true } }],
  ['an extra adapter tensor', { tensors: (t) => void t.set('base_model.model.model.layers.0.mlp.extra.weight', zerosTensor([8, 8])) }],
  ['lora_A of rank 4', { tensors: (t) => void t.set(A0, zerosTensor([4, 64])) }],
  ['lora_B for a 32-wide output', { tensors: (t) => void t.set(B0, zerosTensor([32, 8])) }],
  ['lora_A with three dimensions', { tensors: (t) => void t.set(A0, zerosTensor([8, 8, 8])) }],
];

/** Edits of the JSON quant state of the first q_proj of tiny-llama-bnb-4bit. */
function stateEdit(edit: (state: Record<string, unknown>) => void): FolderEdit {
  return {
    tensors: (t) => {
      const state = JSON.parse(new TextDecoder().decode(t.get(STATE0)!.data)) as Record<string, unknown>;
      edit(state);
      const data = new TextEncoder().encode(JSON.stringify(state));
      t.set(STATE0, { dtype: 'uint8', shape: [data.length], data });
    },
  };
}

const BAD_QUANT_STATES: readonly [string, FolderEdit][] = [
  ['quant state that is not JSON', { tensors: (t) => void t.set(STATE0, { dtype: 'uint8', shape: [5], data: new TextEncoder().encode('{"qua') }) }],
  ['quant_type "int4"', stateEdit((s) => (s['quant_type'] = 'int4'))],
  ['blocksize 0', stateEdit((s) => (s['blocksize'] = 0))],
  ['blocksize 48', stateEdit((s) => (s['blocksize'] = 48))],
  ['quant-state shape [64, 32] over 2048 packed bytes', stateEdit((s) => (s['shape'] = [64, 32]))],
  ['quant-state shape [32, 128], the right size but not the config\'s', stateEdit((s) => (s['shape'] = [32, 128]))],
  ['quant-state dtype "int8"', stateEdit((s) => (s['dtype'] = 'int8'))],
  ['nested_offset NaN', stateEdit((s) => (s['nested_offset'] = '__nan__'))],
  ['quant state missing', { tensors: (t) => void t.delete(STATE0) }],
  ['absmax missing', { tensors: (t) => void t.delete(`${Q0}.absmax`) }],
  ['absmax of the wrong length', { tensors: (t) => void t.set(`${Q0}.absmax`, { dtype: 'uint8', shape: [32], data: new Uint8Array(32) }) }],
  ['quant_map of the wrong length', { tensors: (t) => void t.set(`${Q0}.quant_map`, zerosTensor([8])) }],
  ['nested_absmax missing', { tensors: (t) => void t.delete(`${Q0}.nested_absmax`) }],
  ['nested_absmax holding NaN', { tensors: (t) => poison(t, `${Q0}.nested_absmax`, Number.NaN) }],
  ['packed weight of 1000 bytes', { tensors: (t) => void t.set(Q0, { dtype: 'uint8', shape: [1000, 1], data: new Uint8Array(1000) }) }],
];

function generate(model: string, adapter?: string): string[] {
  return ['generate', '--model', model, ...(adapter ? ['--adapter', adapter] : []), '--prompt', 'ab', '--max-new-tokens', '1'];
}

/**
 * Builds the corpus under `root` (which should be empty) and returns its cases, valid ones last. Each case has a
 * folder of its own, so cases can run in any order and a command that wrongly wrote something is caught.
 */
export async function makeMalformedCorpus(root: string): Promise<CorpusCase[]> {
  const cases: CorpusCase[] = [];
  const folder = async (what: string): Promise<{ id: string; dir: string }> => {
    const id = `${String(cases.length).padStart(3, '0')}-${what.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`;
    const dir = join(root, id);
    await mkdir(dir, { recursive: true });
    return { id, dir };
  };
  const add = (id: string, what: string, command: Command, argv: string[], names: string | null, outputs: string[] = []) => {
    cases.push({ id, what: `${command}: ${what}`, argv, valid: names === null, names, outputs });
  };
  const commandFor = (command: Command, dir: string, model: string, adapter?: string): { argv: string[]; outputs: string[] } => {
    const out = join(dir, 'out');
    if (command === 'inspect') return { argv: ['inspect', adapter ?? model], outputs: [] };
    if (command === 'generate') return { argv: generate(model, adapter), outputs: [] };
    if (command === 'merge') return { argv: ['merge', '--model', model, '--adapter', adapter ?? LORA, '--output', out], outputs: [out] };
    return { argv: ['quantize', '--model', model, '--output', out], outputs: [out] };
  };

  // Safetensors structure: the model's weights read by every command, the adapter's by inspect and merge.
  for (const [what, edit] of STRUCTURAL) {
    for (const command of ['inspect', 'generate', 'quantize', 'merge'] as const) {
      if (command !== 'inspect' && !/header length 2\^63|truncated by one|same offsets|F8_E4M3|not JSON$/.test(what)) continue;
      const { id, dir } = await folder(`${command} model ${what}`);
      const model = join(dir, 'model');
      await cp(LLAMA, model, { recursive: true });
      await writeFile(join(model, WEIGHTS), edit(await readRaw(join(LLAMA, WEIGHTS))));
      const { argv, outputs } = commandFor(command, dir, model);
      add(id, `model.safetensors with ${what}`, command, argv, join(model, WEIGHTS), outputs);
    }
    if (!/^(empty|header length one|header that is not JSON|dtype F8|negative dim|second tensor|file truncated by one|16 bytes)/.test(what)) continue;
    for (const command of ['inspect', 'merge'] as const) {
      const { id, dir } = await folder(`${command} adapter ${what}`);
      const adapter = join(dir, 'adapter');
      await cp(LORA, adapter, { recursive: true });
      await writeFile(join(adapter, ADAPTER_WEIGHTS), edit(await readRaw(join(LORA, ADAPTER_WEIGHTS))));
      const { argv, outputs } = commandFor(command, dir, LLAMA, adapter);
      add(id, `adapter_model.safetensors with ${what}`, command, argv, join(adapter, ADAPTER_WEIGHTS), outputs);
    }
  }

  const modelCases = async (list: readonly [string, FolderEdit][], commands: readonly Command[], names: (model: string) => string) => {
    for (const [what, edit] of list) {
      for (const command of commands) {
        const { id, dir } = await folder(`${command} ${what}`);
        const model = await editedFolder(LLAMA, join(dir, 'model'), edit);
        const { argv, outputs } = commandFor(command, dir, model);
        add(id, what, command, argv, names(model), outputs);
      }
    }
  };
  const weightsOrConfig = (model: string) => join(model, WEIGHTS);
  await modelCases(CONTRADICTING, ['quantize', 'generate'], weightsOrConfig);
  await modelCases(CONTRADICTING.filter(([w]) => /hidden_size 32|num_hidden_layers 1|lm_head.weight missing|extra tensor/.test(w)), ['inspect', 'merge'], weightsOrConfig);
  await modelCases(NON_FINITE, ['generate', 'quantize', 'merge'], weightsOrConfig);
  await modelCases(BAD_CONFIG, ['generate'], (model) => join(model, 'config.json'));
  await modelCases(BAD_CONFIG.filter(([w]) => /rope_theta -1|rms_norm_eps 0|hidden_size 64.5|not JSON/.test(w)), ['inspect', 'quantize'], (model) => join(model, 'config.json'));

  const adapterCases = async (list: readonly [string, FolderEdit][], commands: readonly Command[], names: (adapter: string) => string) => {
    for (const [what, edit] of list) {
      for (const command of commands) {
        const { id, dir } = await folder(`${command} adapter ${what}`);
        const adapter = await editedFolder(LORA, join(dir, 'adapter'), { ...edit, jsonName: ADAPTER_CONFIG, weightsName: ADAPTER_WEIGHTS });
        const { argv, outputs } = commandFor(command, dir, LLAMA, adapter);
        add(id, `adapter ${what}`, command, argv, names(adapter), outputs);
      }
    }
  };
  await adapterCases(BAD_ADAPTER_CONFIG, ['merge'], (adapter) => join(adapter, ADAPTER_CONFIG));
  await adapterCases(BAD_ADAPTER_CONFIG.filter(([w]) => /^r |rank_pattern|lora_dropout 1.5|not JSON/.test(w)), ['inspect', 'generate'], (adapter) => join(adapter, ADAPTER_CONFIG));
  await adapterCases(BAD_ADAPTER_TENSORS, ['merge', 'generate'], (adapter) => join(adapter, ADAPTER_WEIGHTS));

  for (const [what, edit] of BAD_QUANT_STATES) {
    for (const command of ['generate', 'merge'] as const) {
      const { id, dir } = await folder(`${command} bnb ${what}`);
      const model = await editedFolder(BNB, join(dir, 'model'), edit);
      if (what === 'nested_offset NaN') await writeNanOffset(join(model, WEIGHTS));
      const { argv, outputs } = commandFor(command, dir, model, command === 'merge' ? LORA : undefined);
      add(id, `bnb-4bit ${what}`, command, argv, join(model, WEIGHTS), outputs);
    }
  }

  // Valid inputs: the fixtures, through every command.
  for (const command of ['inspect', 'generate', 'merge', 'quantize'] as const) {
    const { id, dir } = await folder(`${command} valid tiny-llama`);
    const { argv } = commandFor(command, dir, LLAMA, command === 'inspect' ? undefined : command === 'merge' ? LORA : undefined);
    add(id, 'the tiny-llama fixture', command, argv, null);
  }
  for (const [what, argv] of [
    ['the tiny-llama LoRA fixture', ['inspect', LORA]],
    ['tiny-llama with its LoRA adapter', generate(LLAMA, LORA)],
    ['the tiny-llama bnb-4bit fixture', generate(BNB)],
  ] as const) {
    const { id } = await folder(`valid ${what}`);
    add(id, what, argv[0] as Command, [...argv], null);
  }
  await writeFile(join(root, 'manifest.json'), JSON.stringify(cases, null, 2));
  return cases;
}

/** JSON.stringify cannot write NaN: put Python's NaN literal into the quant state's nested_offset in place. */
async function writeNanOffset(path: string): Promise<void> {
  const raw = await readRaw(path);
  const [begin, end] = entry(raw, STATE0)['data_offsets'] as [number, number];
  // Same byte length, so no offset moves: the 9 bytes of "__nan__" become NaN and 6 spaces.
  const text = new TextDecoder().decode(raw.data.subarray(begin, end)).replace('"__nan__"', 'NaN'.padEnd(9));
  raw.data.set(new TextEncoder().encode(text), begin);
  await writeFile(path, assemble(JSON.stringify(raw.header), raw.data));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2];
  if (!root) {
    console.error('usage: node dist/scripts/make-malformed-corpus.js OUTDIR');
    process.exit(2);
  }
  const cases = await makeMalformedCorpus(resolve(root));
  console.log(`wrote ${cases.length} cases (${cases.filter((c) => !c.valid).length} malformed) and manifest.json to ${resolve(root)}`);
}
