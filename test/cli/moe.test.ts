// Mixture-of-experts models from the command line with PEFT's expert adapters (target_parameters): `loraforge
// merge` writes a checkpoint in the layout transformers saved the base in, whose weights are PEFT's merged ones and
// whose logits are base + adapter's; `loraforge generate` with the adapter, and from the merged folder, gives PEFT's
// greedy tokens (the prompt given as ids with --prompt-ids, since the reference prompt is not valid UTF-8 text).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { decodeTensor } from '../../src/io/decode.js';
import { generate } from '../../src/generate/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { PeftModel } from '../../src/peft/index.js';
import { loadIn4bit } from '../../src/quant/index.js';
import { AutoTokenizer } from '../../src/tokenizer/index.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';
import { assertClose } from '../helpers/numeric.js';
import { cli, oneSentence, serveOnce, tempDir } from './helpers.js';

const TOLERANCE = 1e-4;

/** How each family's checkpoint stores expert e of layer 0: transformers' fused gate_up_proj is [gate; up] rows. */
const STORED_EXPERTS: Record<string, { gate: string; up: string; down: string } | null> = {
  'tiny-mixtral': { gate: 'block_sparse_moe.experts.E.w1.weight', up: 'block_sparse_moe.experts.E.w3.weight', down: 'block_sparse_moe.experts.E.w2.weight' },
  'tiny-qwen3moe': { gate: 'mlp.experts.E.gate_proj.weight', up: 'mlp.experts.E.up_proj.weight', down: 'mlp.experts.E.down_proj.weight' },
  // gpt-oss stores the fused parameters themselves.
  'tiny-gptoss': null,
};

async function refFloats(name: string, key: string): Promise<Float32Array> {
  return (await readFixtureTensor(`${name}-ref.safetensors`, key)).data as Float32Array;
}

async function refIds(name: string, key: string): Promise<number[]> {
  return Array.from((await readFixtureTensor(`${name}-ref.safetensors`, key)).data as ArrayLike<number | bigint>, Number);
}

/** The reference prompt, the first 8 ids of row 0, as --prompt-ids takes it. */
async function refPrompt(name: string): Promise<string> {
  return (await refIds(name, 'input_ids')).slice(0, 8).join(',');
}

/** What `loraforge generate` prints for reference tokens: their text without special tokens, and a newline. */
async function refText(name: string, key: string): Promise<string> {
  const tokenizer = await AutoTokenizer.fromPretrained(fixturePath(name));
  return `${tokenizer.decode(await refIds(name, key), { skipSpecialTokens: true })}\n`;
}

interface Stored {
  readonly layout: Record<string, { dtype: string; shape: number[] }>;
  readonly values: Map<string, Float32Array>;
}

/** Every tensor of a safetensors file (opening it checks the header, the offsets tiling the data, shape x dtype). */
async function readAll(path: string): Promise<Stored> {
  const file = await SafetensorsFile.open(path);
  try {
    const layout: Stored['layout'] = {};
    const values = new Map<string, Float32Array>();
    for (const n of file.names()) {
      const { dtype, shape } = file.info(n);
      layout[n] = { dtype, shape: [...shape] };
      values.set(n, decodeTensor(dtype, await file.read(n)) as Float32Array);
    }
    return { layout, values };
  } finally {
    await file.close();
  }
}

/** Layer 0's fused expert parameter from the stored per-expert tensors (or the stored fused one), as transformers holds it. */
function fused(name: string, stored: Stored, parameter: 'gate_up_proj' | 'down_proj', experts: number): Float32Array {
  const per = STORED_EXPERTS[name];
  if (!per) return stored.values.get(`model.layers.0.mlp.experts.${parameter}`)!;
  const parts = Array.from({ length: experts }, (_, e) => (parameter === 'down_proj' ? [per.down] : [per.gate, per.up]).map((k) => stored.values.get(`model.layers.0.${k.replace('E', String(e))}`)!)).flat();
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

for (const name of Object.keys(STORED_EXPERTS)) {
  test(`${name}: merge of the expert adapter writes transformers' layout with PEFT's merged weights and logits`, async () => {
    const dir = await tempDir();
    const merged = join(dir, 'merged');
    const r = cli(['merge', '--model', fixturePath(name), '--adapter', fixturePath(`${name}-lora_experts`), '--output', merged]);
    assert.equal(r.code, 0, r.stderr);
    const base = await readAll(fixturePath(name, 'model.safetensors'));
    const out = await readAll(join(merged, 'model.safetensors'));
    assert.deepEqual(out.layout, base.layout, 'the same tensor names, dtypes and shapes as the checkpoint transformers wrote');
    // The adapter targets q_proj and the experts: every other tensor is the base's, bit for bit.
    const adapted = /(\.q_proj\.weight|experts\.(\d+\.(w[123]|gate_proj|up_proj|down_proj)\.weight|gate_up_proj|down_proj))$/;
    const changed = [...base.values.keys()].filter((n) => !base.values.get(n)!.every((v, i) => Object.is(v, out.values.get(n)![i])));
    assert.ok(changed.length > 0 && changed.every((n) => adapted.test(n)), `only adapted tensors changed: ${changed.filter((n) => !adapted.test(n)).join(', ')}`);
    const experts = 4;
    for (const p of ['gate_up_proj', 'down_proj'] as const) {
      assertClose(fused(name, out, p, experts), await refFloats(name, `lora_experts.merged.model.layers.0.mlp.experts.${p}`), TOLERANCE, `merged ${p}`);
    }
    assertClose(out.values.get('model.layers.0.self_attn.q_proj.weight')!, await refFloats(name, 'lora_experts.merged.model.layers.0.self_attn.q_proj.weight'), TOLERANCE, 'merged q_proj');

    const flat = await refIds(name, 'input_ids');
    const inputIds = [0, 1, 2].map((b) => flat.slice(b * 24, (b + 1) * 24));
    const model = await AutoModelForCausalLM.fromPretrained(merged, { dtype: 'float32' });
    const logits = await (await model.forward({ inputIds })).logits.data();
    assertClose(logits, await refFloats(name, 'lora_experts.merged_logits'), TOLERANCE, 'merged model logits vs PEFT merge_and_unload');
    assertClose(logits, await refFloats(name, 'lora_experts.logits'), TOLERANCE, 'merged model logits vs PEFT base + adapter');
    const fromMerged = cli(['generate', '--model', merged, '--prompt-ids', await refPrompt(name), '--max-new-tokens', '16']);
    assert.equal(fromMerged.code, 0, fromMerged.stderr);
    assert.equal(fromMerged.stdout, await refText(name, 'lora_experts.generate'), "the merged folder generates PEFT's greedy tokens with the adapter");
  });

  test(`${name}: generate with and without the expert adapter is PEFT's greedy output`, async () => {
    const prompt = await refPrompt(name);
    const text = (key: string) => refText(name, key);
    const base = cli(['generate', '--model', fixturePath(name), '--prompt-ids', prompt, '--max-new-tokens', '16']);
    assert.equal(base.code, 0, base.stderr);
    assert.equal(base.stdout, await text('generate_base'));
    const adapted = cli(['generate', '--model', fixturePath(name), '--adapter', fixturePath(`${name}-lora_experts`), '--prompt-ids', prompt, '--max-new-tokens', '16']);
    assert.equal(adapted.code, 0, adapted.stderr);
    assert.equal(adapted.stdout, await text('lora_experts.generate'));
    assert.notEqual(adapted.stdout, base.stdout, 'the adapter changes the output');
  });
}

test('generate --prompt-ids refuses what it cannot take, in one sentence', () => {
  const model = fixturePath('tiny-mixtral');
  assert.equal(oneSentence(cli(['generate', '--model', model, '--prompt-ids', '1,x'])), 'loraforge: --prompt-ids must be a comma list of token ids (e.g. 84,49,13); got "1,x".');
  assert.equal(oneSentence(cli(['generate', '--model', model, '--prompt-ids', '1,384'])), "loraforge: --prompt-ids has token id 384, outside the model's vocabulary of 384 tokens.");
  assert.equal(oneSentence(cli(['generate', '--model', model, '--prompt-ids', '1', '--prompt', 'a'])), 'loraforge: --prompt and --prompt-ids both give the prompt; pass one of them.');
  assert.equal(oneSentence(cli(['generate', '--model', model, '--prompt-ids', '1', '--chat'])), 'loraforge: --chat renders text in the chat template, so it cannot take --prompt-ids; pass --prompt with --chat.');
  assert.equal(oneSentence(cli(['generate', '--model', model, '--prompt', 'a', '--system', 'terse'])), 'loraforge: --system is the system message of --chat; add --chat or drop --system.');
});

test('inspect of a MoE model names its experts and counts them as NF4 in the QLoRA estimate, as train --qlora holds them', () => {
  const r = cli(['inspect', fixturePath('tiny-qwen3moe')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /, 4 experts \(top 2, intermediate 48\) on 2 of 2 layers,/);
  // 2 layers x (q, o 64x64 + k, v 32x64 = 12,288 projection weights + 4 experts x 3 x 48x64 = 36,864 expert weights)
  // = 98,304 weights at 0.5 + 1/64 + 4/16384 bytes, and the other 148,352 - 98,304 = 50,048 parameters in bf16:
  // 150,808 bytes.
  assert.match(r.stdout, /parameters: 148,352 /);
  assert.match(r.stdout, /NF4 \(QLoRA\) 147\.3 KiB\n/);
});

test('quantize of a MoE model writes NF4 projections, says the experts stay bfloat16, and the result generates with an expert adapter', async () => {
  const dir = await tempDir();
  const out = join(dir, 'bnb');
  const r = cli(['quantize', '--model', fixturePath('tiny-mixtral'), '--output', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Quantized 8 projection weights to NF4; /);
  assert.match(r.stdout, /\nThe experts stay in bfloat16, as transformers \+ bitsandbytes keep fused expert parameters; train --qlora and serve --qlora on the dense model put them in NF4 too\.\n$/);
  const stored = await readAll(join(out, 'model.safetensors'));
  assert.equal(stored.layout['model.layers.0.self_attn.q_proj.weight']!.dtype, 'uint8');
  assert.equal(stored.layout['model.layers.0.block_sparse_moe.experts.0.w1.weight']!.dtype, 'bfloat16');
  const generated = cli(['generate', '--model', out, '--adapter', fixturePath('tiny-mixtral-lora_experts'), '--prompt-ids', await refPrompt('tiny-mixtral'), '--max-new-tokens', '4']);
  assert.equal(generated.code, 0, generated.stderr);
});

test("serve --qlora serves an expert adapter over NF4 experts with the library's QLoRA tokens", async () => {
  const name = 'tiny-qwen3moe';
  const prompt = (await refIds(name, 'input_ids')).slice(0, 8);
  const adapter = fixturePath(`${name}-lora_experts`);
  const text = await serveOnce(['--model', fixturePath(name), '--qlora', '--adapter', `e=${adapter}`], { model: 'e', prompt, max_tokens: 16, temperature: 0 });
  const base = await loadIn4bit(fixturePath(name), {});
  const peft = await PeftModel.fromPretrained(base, adapter, { dtype: base.dtype });
  const [tokens] = await generate(peft.model, [prompt], { maxNewTokens: 16 });
  const tokenizer = await AutoTokenizer.fromPretrained(fixturePath(name));
  assert.equal(text, tokenizer.decode(tokens!.slice(prompt.length), { skipSpecialTokens: true }));
  assert.notEqual(`${text}\n`, await refText(name, 'lora_experts.generate'), 'the dense model (PEFT\'s reference) gives other tokens');
});
