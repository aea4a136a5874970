// config.json parsing: every field that changes the computation is read or refused in one sentence naming it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ConfigError, parseModelConfig } from '../../src/models/config.js';
import { fixturePath } from '../helpers/fixtures.js';

const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(fixturePath(name, 'config.json'), 'utf8')) as Record<string, unknown>;

function refuses(raw: Record<string, unknown>, pattern: RegExp): void {
  assert.throws(() => parseModelConfig(raw, 'm/config.json'), (e: Error) => e instanceof ConfigError && pattern.test(e.message) && e.message.startsWith('m/config.json'), String(pattern));
}

test('fields that change the computation and are not implemented are refused, naming the field', () => {
  refuses({ ...fixture('tiny-llama'), hidden_act: 'quick_gelu' }, /"hidden_act" is "quick_gelu", which loraforge does not implement; supported: silu, swish, gelu, gelu_pytorch_tanh, gelu_new, relu/);
  refuses({ ...fixture('tiny-gemma2'), hidden_activation: 'gelu_fast' }, /"hidden_activation" is "gelu_fast"/);
  refuses({ ...fixture('tiny-llama'), rope_parameters: { rope_type: 'su', rope_theta: 10000 } }, /rope/);
  refuses({ ...fixture('tiny-gemma3'), use_bidirectional_attention: true }, /"use_bidirectional_attention" is true/);
  refuses({ ...fixture('tiny-qwen3'), layer_types: ['full_attention'] }, /"layer_types" lists 1 layers but num_hidden_layers is 2/);
  refuses({ ...fixture('tiny-qwen3'), layer_types: ['full_attention', 'chunked_attention'] }, /layer_types\[1\] is "chunked_attention"/);
  refuses({ ...fixture('tiny-gemma2'), sliding_window: null }, /sliding_attention layers but "sliding_window" is not set/);
  refuses({ ...fixture('tiny-phi3'), partial_rotary_factor: 0.1 }, /partial_rotary_factor 0.1 gives 1 rotary dimensions of head_dim 16; it must give a positive even number/);
  refuses({ ...fixture('tiny-smollm3'), no_rope_layers: [1, 0, 1] }, /"no_rope_layers" must list 0 or 1 for each of the 4 layers/);
  refuses({ ...fixture('tiny-llama'), architectures: ['FalconForCausalLM'] }, /architecture "FalconForCausalLM" is not supported; supported architectures are LlamaForCausalLM/);
  refuses({ ...fixture('tiny-llama'), rms_norm_eps: -1 }, /"rms_norm_eps" must be positive/);
});

test('sliding windows follow each config class: Mistral slides every layer, Qwen2 from max_window_layers on and only with use_sliding_window', () => {
  const mistral = parseModelConfig({ ...fixture('tiny-llama'), architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 4 });
  assert.deepEqual([mistral.layerTypes, mistral.slidingWindow], [['sliding_attention', 'sliding_attention'], 4]);
  const llama = parseModelConfig({ ...fixture('tiny-llama') });
  assert.deepEqual([llama.layerTypes, llama.slidingWindow], [['full_attention', 'full_attention'], null]);
  const qwen2Off = parseModelConfig({ ...fixture('tiny-qwen2'), sliding_window: 4, use_sliding_window: false, max_window_layers: 1 });
  assert.deepEqual([qwen2Off.layerTypes, qwen2Off.slidingWindow], [['full_attention', 'full_attention'], null]);
  const qwen2On = parseModelConfig({ ...fixture('tiny-qwen2'), sliding_window: 4, use_sliding_window: true, max_window_layers: 1, layer_types: undefined });
  assert.deepEqual([qwen2On.layerTypes, qwen2On.slidingWindow], [['full_attention', 'sliding_attention'], 4]);
  const gemma2 = parseModelConfig({ ...fixture('tiny-gemma2'), layer_types: undefined });
  assert.deepEqual(gemma2.layerTypes, ['sliding_attention', 'full_attention']);
});

test('Gemma 2 soft-caps attention scores only with eager attention, as transformers does', () => {
  const sdpa = parseModelConfig(fixture('tiny-gemma2'));
  assert.deepEqual([sdpa.attnLogitSoftcap, sdpa.configuredAttnLogitSoftcap, sdpa.finalLogitSoftcap], [0, 2, 3]);
  const eager = parseModelConfig(fixture('tiny-gemma2'), 'config.json', { attnImplementation: 'eager' });
  assert.equal(eager.attnLogitSoftcap, 2);
  assert.throws(() => parseModelConfig(fixture('tiny-gemma2'), 'config.json', { attnImplementation: 'flash' as 'eager' }), /attnImplementation "flash" is not supported/);
});

test("a Gemma 3 multimodal config reads its text_config with Gemma3TextConfig's defaults", () => {
  // google/gemma-3-4b-it's config.json gives only these text fields; the rest are the config class's defaults.
  const c = parseModelConfig({
    architectures: ['Gemma3ForConditionalGeneration'],
    model_type: 'gemma3',
    text_config: { hidden_size: 2560, intermediate_size: 10240, model_type: 'gemma3_text', num_hidden_layers: 34, rope_scaling: { factor: 8.0, rope_type: 'linear' }, sliding_window: 1024 },
    vision_config: { model_type: 'siglip_vision_model' },
  });
  assert.deepEqual([c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.vocabSize, c.attentionScale, c.tieWordEmbeddings], [8, 4, 256, 262208, 1 / 16, true]);
  assert.equal(c.layerTypes.filter((t) => t === 'full_attention').length, 5, 'every sixth layer is global');
  assert.deepEqual([c.rope.full_attention.type, c.rope.full_attention.theta, c.rope.sliding_attention.type, c.rope.sliding_attention.theta], ['linear', 1e6, 'default', 1e4]);
  assert.equal(c.skippedTower, 'vision_tower');
});

test('tie_word_embeddings defaults per family as the config classes do', () => {
  const strip = (name: string) => {
    const raw = fixture(name);
    delete raw['tie_word_embeddings'];
    return parseModelConfig(raw).tieWordEmbeddings;
  };
  assert.deepEqual(['tiny-llama', 'tiny-qwen3', 'tiny-gemma2', 'tiny-smollm3', 'tiny-phi3', 'tiny-olmo2'].map(strip), [false, false, true, true, false, false]);
});
