// Config refusals ported (in our own words) from PEFT 0.21's tests/test_config.py, tests/test_tuners_utils.py and
// tests/test_other.py; each test names the PEFT test it follows.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { getPeftModel, loraConfigToJson, parseAdapterConfig, PeftError, resolveLoraConfig, type LoraConfig } from '../../src/peft/index.js';
import { loadBase } from './helpers.js';

const refused = (config: LoraConfig, field: RegExp) =>
  assert.throws(() => resolveLoraConfig(config), (err: unknown) => err instanceof PeftError && field.test(err.message) && err.message.trim().split(/(?<=\.)\s+(?=[A-Z])/).length === 1);

// test_config.py::test_regex_with_layer_indexing_lora
test('a string target_modules (a regex) refuses layers_to_transform and layers_pattern', () => {
  refused({ targetModules: '.*foo', layersToTransform: [0] }, /layersToTransform cannot be used when targetModules is a string/);
  refused({ targetModules: '.*foo', layersToTransform: 0 }, /layersToTransform/);
  refused({ targetModules: '.*foo', layersPattern: 'layers' }, /layersPattern cannot be used when targetModules is a string/);
});

// test_config.py::test_lora_config_layers_to_transform_validation and test_config_layers_to_transform_index_zero
test('layers_pattern needs layers_to_transform; both together (index 0 included) or neither are accepted', () => {
  refused({ targetModules: ['q_proj'], layersPattern: 'model.layers' }, /layersPattern .* without layersToTransform/);
  assert.deepEqual(resolveLoraConfig({ targetModules: ['q_proj'], layersToTransform: [0, 1, 2], layersPattern: 'model.layers' }).layersToTransform, [0, 1, 2]);
  assert.equal(resolveLoraConfig({ targetModules: ['q_proj'], layersToTransform: 0, layersPattern: 'model.layers' }).layersToTransform, 0);
  assert.equal(resolveLoraConfig({ targetModules: ['q_proj'] }).layersPattern, null);
});

// test_config.py::test_valid_task_type / test_invalid_task_type
test('task_type: CAUSAL_LM and null are accepted, other PEFT task types and unknown ones refused', () => {
  assert.equal(resolveLoraConfig({ taskType: 'CAUSAL_LM' }).taskType, 'CAUSAL_LM');
  assert.equal(resolveLoraConfig({ taskType: null }).taskType, null);
  refused({ taskType: 'SEQ_CLS' }, /taskType "SEQ_CLS" is not supported/);
  refused({ taskType: 'invalid-task' }, /taskType "invalid-task" .*PEFT's task types are SEQ_CLS/);
  assert.throws(() => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', task_type: 'TOKEN_CLS' }), 'a.json'), { message: 'a.json: task_type "TOKEN_CLS" is not supported (loraforge adapts causal language models only); use "CAUSAL_LM" or null.' });
});

// test_other.py / test_custom_models.py lora_bias cases (LoraConfig.__post_init__: lora_bias with init other than
// True/False, lora_bias with DoRA)
test('lora_bias is refused with DoRA and with gaussian init', () => {
  refused({ loraBias: true, useDora: true }, /loraBias is not supported with DoRA/);
  refused({ loraBias: true, initLoraWeights: 'gaussian' }, /loraBias is supported only with initLoraWeights true or false/);
  assert.equal(resolveLoraConfig({ loraBias: true, initLoraWeights: false }).loraBias, true);
});

// LoraConfig.__post_init__: loftq without loftq_config; DoRA with megatron_config
test('loftq init needs loftq_config, and DoRA refuses megatron_config (from adapter_config.json)', () => {
  assert.throws(() => resolveLoraConfig({ initLoraWeights: 'loftq' as never }), /initLoraWeights "loftq" needs loftq_config/);
  assert.throws(() => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', use_dora: true, megatron_config: { a: 1 } }), 'a.json'), { message: 'a.json: use_dora is not supported with megatron_config; set use_dora false or drop megatron_config.' });
});

// test_config.py::test_from_pretrained_forward_compatible
test('unknown adapter_config.json keys are dropped with PEFT\'s warning and not written back', () => {
  const warn = mock.method(console, 'warn', () => {});
  try {
    const config = parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', target_modules: ['q_proj'], foobar: 'baz', spam: 123, loftq_config: {} }), 'adapter_config.json');
    const json = JSON.parse(loraConfigToJson(config, { inferenceMode: true })) as Record<string, unknown>;
    assert.equal('foobar' in json, false);
    assert.equal('spam' in json, false);
    assert.equal(warn.mock.callCount(), 1);
    assert.match(String(warn.mock.calls[0]!.arguments[0]), /^Unexpected keyword arguments \['foobar', 'spam'\] for class LoraConfig, these are ignored\./);
  } finally {
    warn.mock.restore();
  }
});

// test_config.py::test_from_pretrained_sanity_check
test('a JSON without peft_type is not taken for a LoRA config', () => {
  assert.throws(() => parseAdapterConfig(JSON.stringify({ foo: 'bar', baz: 123 }), 'x.json'), /peft_type/);
});

// test_tuners_utils.py / test_other.py: "supports only 1 adapter with bias" (BaseTuner._check_new_adapter_config)
test('a second adapter with bias other than "none" is refused', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'], bias: 'all' });
  assert.throws(() => peft.addAdapter('other', { targetModules: ['v_proj'], bias: 'lora_only' }), /supports only one adapter with bias/);
  assert.equal(peft.peftConfig.has('other'), false);
  peft.addAdapter('plain', { targetModules: ['v_proj'] });
});

// test_other.py (modules_to_save: "Attempted to set multiple ... adapters at once for modules_to_save")
test('two active adapters with their own copy of one modules_to_save module are refused', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'], modulesToSave: ['lm_head'] });
  peft.addAdapter('b', { targetModules: ['q_proj'], modulesToSave: ['lm_head'] });
  peft.addAdapter('c', { targetModules: ['q_proj'] });
  assert.throws(() => peft.setAdapter(['default', 'b']), /cannot be active at once/);
  peft.setAdapter(['default', 'c']);
  assert.deepEqual(peft.activeAdapters, ['default', 'c']);
});

// test_tuners_utils.py two adapters from one config must not share init (PEFT draws each from torch's global RNG)
test('two adapters created from one config get different initial weights, the same on every run', async () => {
  const params = async () => {
    const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'] });
    peft.addAdapter('second', { targetModules: ['q_proj'] });
    const named = new Map(peft.namedParameters());
    const a = named.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight')!;
    const b = named.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.second.weight')!;
    return [Array.from(await a.data()), Array.from(await b.data())];
  };
  const [a1, b1] = await params();
  const [a2, b2] = await params();
  assert.notDeepEqual(a1, b1);
  assert.deepEqual(a1, a2);
  assert.deepEqual(b1, b2);
});

// test_other.py / PeftModel.disable_adapter: adapter layers do not require grad inside the context
test('disableAdapter turns requires_grad off for adapter tensors and restores it', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'] });
  const trainable = [...peft.trainableParameters().values()];
  assert.ok(trainable.length > 0 && trainable.every((t) => t.requiresGrad));
  await peft.disableAdapter(() => {
    assert.ok(trainable.every((t) => !t.requiresGrad));
  });
  assert.ok(trainable.every((t) => t.requiresGrad));
});

// test_tuners_utils.py::TestFindMinimalTargetModules (applied at injection to lists of >= 20 names)
test('a target list of 20 or more full paths is condensed to minimal suffixes, as PEFT saves it', async () => {
  const base = await loadBase('tiny-smollm3');
  const paths = [...base.namedModules()].map(([p]) => p).filter((p) => /\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$/.test(p));
  assert.equal(paths.length, 28);
  const peft = getPeftModel(base, { targetModules: paths });
  const saved = peft.peftConfig.get('default')!.targetModules as string[];
  assert.deepEqual([...saved].sort(), ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
});
