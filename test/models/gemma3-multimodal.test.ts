// Gemma 3 checkpoints of 4B and up are Gemma3ForConditionalGeneration: the text decoder loads from under its
// language_model prefix (as released, or as transformers 5 saves it), and the vision tower is left out.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';
import { assertClose } from '../helpers/numeric.js';

/** tiny-gemma3 repackaged as a multimodal checkpoint: text_config, tensors renamed, a stand-in vision tensor. */
async function multimodalFolder(rename: (name: string) => string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-gemma3mm-'));
  const text = JSON.parse(await readFile(fixturePath('tiny-gemma3', 'config.json'), 'utf8')) as Record<string, unknown>;
  const config = { architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', text_config: text, vision_config: { model_type: 'siglip_vision_model', hidden_size: 8 }, mm_tokens_per_image: 4 };
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(fixturePath('tiny-gemma3', f), join(dir, f));
  const st = await SafetensorsFile.open(fixturePath('tiny-gemma3', 'model.safetensors'));
  const entries = [];
  for (const name of st.names()) {
    const info = st.info(name);
    entries.push({ name: rename(name), dtype: info.dtype, shape: info.shape, data: await st.read(name) });
  }
  await st.close();
  entries.push({ name: 'vision_tower.vision_model.post_layernorm.weight', dtype: 'float32' as const, shape: [8], data: new Uint8Array(32) });
  await writeSafetensors(join(dir, 'model.safetensors'), entries);
  return dir;
}

for (const [layout, rename] of [
  ['as released (language_model.model.*)', (n: string) => n.replace(/^model\./, 'language_model.model.')],
  ['as transformers 5 saves it (model.language_model.*)', (n: string) => n.replace(/^model\./, 'model.language_model.')],
] as const) {
  test(`a Gemma3ForConditionalGeneration checkpoint ${layout} loads its language model with tiny-gemma3's logits`, async () => {
    const dir = await multimodalFolder(rename);
    try {
      const warnings: string[] = [];
      const warn = console.warn;
      console.warn = (m: string) => warnings.push(m);
      const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype: 'float32' }).finally(() => (console.warn = warn));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /language model only \(the vision_tower is not loaded\)/);
      // Module paths follow transformers 5's Gemma3ForConditionalGeneration, so PEFT adapter keys line up.
      assert.ok([...model.namedParameters()].some(([n]) => n === 'model.language_model.layers.0.self_attn.q_proj.weight'));
      const ids = (await readFixtureTensor('tiny-gemma3-ref.safetensors', 'input_ids'));
      const rows = Array.from({ length: 3 }, (_, b) => Array.from((ids.data as BigInt64Array).subarray(b * 24, (b + 1) * 24), Number));
      const { logits } = await model.forward({ inputIds: rows });
      assertClose(await logits.data(), (await readFixtureTensor('tiny-gemma3-ref.safetensors', 'logits_base')).data as Float32Array, 1e-4, 'logits');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
