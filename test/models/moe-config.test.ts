// Mixture-of-experts config.json fields: each one that changes the computation is read or refused by name.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { ConfigError, parseModelConfig } from '../../src/models/config.js';
import { fixturePath } from '../helpers/fixtures.js';

const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(fixturePath(name, 'config.json'), 'utf8')) as Record<string, unknown>;

function refuses(raw: Record<string, unknown>, message: string): void {
  assert.throws(() => parseModelConfig(raw, 'm/config.json'), (e: Error) => e instanceof ConfigError && e.message === message, message);
}

test('the three MoE families route as their transformers classes do', () => {
  const mixtral = parseModelConfig(fixture('tiny-mixtral')).moe!;
  const qwen = parseModelConfig(fixture('tiny-qwen3moe')).moe!;
  const gpt = parseModelConfig(fixture('tiny-gptoss'));
  assert.deepEqual([mixtral.routing, mixtral.normTopkProb, mixtral.numExperts, mixtral.topK, mixtral.expertIntermediateSize], ['softmax-topk', true, 4, 2, 160]);
  assert.deepEqual([qwen.routing, qwen.normTopkProb, qwen.expertIntermediateSize], ['softmax-topk', true, 48]);
  assert.deepEqual([gpt.moe!.routing, gpt.moe!.swigluLimit, gpt.attentionSinks, gpt.qkvBias, gpt.oBias], ['topk-softmax', 7, true, true, true]);
  assert.deepEqual(gpt.layerTypes, ['sliding_attention', 'full_attention']);
});

test('Qwen3-MoE layers are sparse every decoder_sparse_step layers except mlp_only_layers', () => {
  const c = parseModelConfig({ ...fixture('tiny-qwen3moe'), num_hidden_layers: 6, decoder_sparse_step: 2, mlp_only_layers: [3] });
  assert.deepEqual(c.moe!.sparseLayers, [false, true, false, false, false, true]);
});

test('Qwen3-MoE reads num_experts as released configs write it, and refuses it when it contradicts num_local_experts', () => {
  const { num_local_experts: _, ...rest } = fixture('tiny-qwen3moe');
  assert.equal(parseModelConfig({ ...rest, num_experts: 8 }).moe!.numExperts, 8);
  refuses({ ...fixture('tiny-qwen3moe'), num_experts: 8 }, 'm/config.json: "num_experts" is 8 but "num_local_experts" is 4; keep one of them.');
});

test('MoE fields loraforge does not implement are refused in one sentence naming the field', () => {
  refuses(
    { ...fixture('tiny-mixtral'), output_router_logits: true, router_aux_loss_coef: 0.02 },
    'm/config.json: "output_router_logits" is true with router_aux_loss_coef 0.02, which adds transformers\' load-balancing loss; loraforge does not implement that loss, so set "output_router_logits" to false.',
  );
  refuses(
    { ...fixture('tiny-mixtral'), router_jitter_noise: 0.1 },
    'm/config.json: "router_jitter_noise" is 0.1, which scales training inputs by random noise; loraforge does not implement it, so set it to 0.',
  );
  refuses({ ...fixture('tiny-gptoss'), swiglu_limit: 10 }, 'm/config.json: "swiglu_limit" is 10, but transformers\' GptOssExperts always clamps at 7.0; set it to 7.0.');
  refuses({ ...fixture('tiny-gptoss'), hidden_act: 'gelu' }, 'm/config.json: "hidden_act" is "gelu", but gpt-oss\'s experts always use their clamped SwiGLU; set it to "silu".');
  refuses({ ...fixture('tiny-mixtral'), num_experts_per_tok: 5 }, 'm/config.json: "num_experts_per_tok" is 5 but there are only 4 experts; it must be at most 4.');
  refuses({ ...fixture('tiny-qwen3moe'), mlp_only_layers: [2] }, 'm/config.json: "mlp_only_layers" must list layer indices 0 to 1, got [2].');
});

test('output_router_logits with a zero router_aux_loss_coef leaves the loss unchanged and is accepted', () => {
  assert.equal(parseModelConfig({ ...fixture('tiny-mixtral'), output_router_logits: true, router_aux_loss_coef: 0 }).moe!.topK, 2);
});

test('gpt-oss on CUDA is refused at load, in one sentence, before anything reaches the device (no sink term in the CUDA attention)', async () => {
  await assert.rejects(AutoModelForCausalLM.fromPretrained(fixturePath('tiny-gptoss'), { device: 'cuda' }), {
    name: 'ConfigError',
    message: 'GptOssForCausalLM uses attention sinks, which the CUDA attention kernels do not implement; load this model with device "cpu".',
  });
});
