import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE_ADAPTER_NAME, PeftModel } from '../../src/peft/index.js';
import { getBackend } from '../../src/backend/registry.js';
import { writeSlice, zeros } from '../../src/ops/index.js';
import { noGrad, noGradAsync } from '../../src/tensor/grad-mode.js';
import { adapterDir, assertClose, assertTensorClose, loadBase, mixedVariants, refBatch, refInts, refValues, MOE_BASES, VARIANTS, type BaseName } from './helpers.js';
import { TEST_DEVICE } from '../helpers/device.js';

// PEFT's references have no mixed.logits for the MoE bases: their second variant targets expert parameters,
// which PEFT 0.21 cannot run in a mixed batch.
for (const base of (Object.keys(VARIANTS) as BaseName[]).filter((b) => !MOE_BASES.includes(b))) {
  test(`${base}: a batch with a different adapter per row (and the base model) matches PEFT's mixed.logits`, async () => {
    const [first, second] = await mixedVariants(base);
    assert.deepEqual(await refInts(base, 'mixed.adapters'), [0, 1, -1]);
    const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, first), { adapterName: first });
    await peft.loadAdapter(adapterDir(base, second), second);
    const { logits } = await peft.forward({ inputIds: (await refBatch(base)).inputIds, adapterNames: [first, second, BASE_ADAPTER_NAME] });
    await assertTensorClose(logits, await refValues(base, 'mixed.logits'), 'mixed.logits');
  });
}

test('per-row adapters are computed on their own rows: a row keeps its logits whatever its neighbours use', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'), { adapterName: 'lora' });
  await peft.loadAdapter(adapterDir('tiny-llama', 'dora'), 'dora');
  const { inputIds } = await refBatch('tiny-llama');
  const mixed = await (await peft.forward({ inputIds, adapterNames: ['dora', 'lora', 'dora'] })).logits.data();
  const rowsOf = (data: Float32Array, row: number) => data.subarray((row * data.length) / 3, ((row + 1) * data.length) / 3);
  const dora = await (await peft.forward({ inputIds, adapterNames: ['dora', 'dora', 'dora'] })).logits.data();
  const lora = await (await peft.forward({ inputIds, adapterNames: ['lora', 'lora', 'lora'] })).logits.data();
  assertClose(rowsOf(mixed, 0), rowsOf(dora, 0), 'row 0', 1e-6);
  assertClose(rowsOf(mixed, 1), rowsOf(lora, 1), 'row 1', 1e-6);
  assertClose(rowsOf(mixed, 2), rowsOf(dora, 2), 'row 2', 1e-6);
});

test('without gradients a mixed batch takes one gathered low-rank product per layer, equal to the per-adapter path within 1e-5', async () => {
  // A trainable adapter makes a forward pass with gradients on take the per-adapter (autograd) path.
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'), { adapterName: 'lora', isTrainable: true });
  await peft.loadAdapter(adapterDir('tiny-llama', 'rslora'), 'rslora');
  const { inputIds } = await refBatch('tiny-llama');
  const adapterNames = ['rslora', BASE_ADAPTER_NAME, 'lora'];
  const perAdapter = await peft.forward({ inputIds, adapterNames });
  assert.ok(perAdapter.logits.requiresGrad, 'the reference pass must record gradients');
  const gathered = await noGradAsync(() => peft.forward({ inputIds, adapterNames }));
  assertClose(await gathered.logits.data(), await perAdapter.logits.data(), 'gathered vs per-adapter', 1e-5);
});

test('the gathered path follows adapter changes between calls with the same row names (its cached plans go stale)', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'), { adapterName: 'lora' });
  await peft.loadAdapter(adapterDir('tiny-llama', 'rslora'), 'rslora');
  const { inputIds } = await refBatch('tiny-llama');
  const adapterNames = ['rslora', BASE_ADAPTER_NAME, 'lora'];
  const run = async (names: readonly string[]) => noGradAsync(async () => (await peft.forward({ inputIds, adapterNames: [...names] })).logits.data());
  const rowsOf = (data: Float32Array, row: number) => data.subarray((row * data.length) / 3, ((row + 1) * data.length) / 3);
  const first = await run(adapterNames);
  assert.deepEqual(await run(adapterNames), first, 'a repeated call reuses its plans with the same result');
  const baseOnly = await run([BASE_ADAPTER_NAME, BASE_ADAPTER_NAME, BASE_ADAPTER_NAME]);

  // Stored in another dtype: new weight tensors under the same names.
  peft.castAdapter('lora', 'bfloat16');
  const cast = await run(adapterNames);
  assert.notDeepEqual(rowsOf(cast, 2), rowsOf(first, 2), 'row 2 now reads the bfloat16 adapter');
  assertClose(rowsOf(cast, 2), rowsOf(first, 2), 'row 2 stays within bfloat16 rounding', 2e-2);
  assert.deepEqual(rowsOf(cast, 0), rowsOf(first, 0), 'row 0 is unaffected');

  // Deleted and loaded again under its old name: new settings and tensors, the same result as before.
  peft.deleteAdapter('rslora');
  assert.deepEqual(rowsOf(await run(['lora', BASE_ADAPTER_NAME, 'lora']), 1), rowsOf(baseOnly, 1));
  await peft.loadAdapter(adapterDir('tiny-llama', 'rslora'), 'rslora');
  assert.deepEqual(rowsOf(await run(adapterNames), 0), rowsOf(first, 0), 'a reloaded adapter is used again');
  // Another adapter loaded under the old name: its rows follow the new weights.
  peft.deleteAdapter('rslora');
  await peft.loadAdapter(adapterDir('tiny-llama', 'lora'), 'rslora');
  const swapped = await run(adapterNames);
  assertClose(rowsOf(swapped, 0), rowsOf(await run(['rslora', 'rslora', 'rslora']), 0), 'row 0 as a fresh plan computes it', 1e-6);
  assert.notDeepEqual(rowsOf(swapped, 0), rowsOf(first, 0), 'row 0 reads the swapped-in adapter');

  // Updated in place (as an optimizer step does): the same tensors, new values, read where they live.
  for (const [path, t] of peft.model.namedParameters()) {
    if (path.includes('lora_B.rslora')) noGrad(() => writeSlice(t, 0, 0, zeros(t.shape, { dtype: t.dtype, device: t.device })));
  }
  assertClose(rowsOf(await run(adapterNames), 0), rowsOf(baseOnly, 0), 'a zeroed B leaves the base row', 1e-6);
});

test('a gathered forward makes one backend call per group of projections that share an input: q, k, v; o; gate, up; down', { skip: getBackend(TEST_DEVICE).multiLora ? false : `the ${TEST_DEVICE} backend has no multiLora kernel to count calls of` }, async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'), { adapterName: 'lora' });
  await peft.loadAdapter(adapterDir('tiny-llama', 'lora_qv'), 'lora_qv');
  const { inputIds } = await refBatch('tiny-llama');
  const backend = getBackend(peft.model.device);
  const calls: number[] = [];
  const original = backend.multiLora!.bind(backend); // the test is skipped where there is none
  backend.multiLora = (args) => {
    calls.push(args.outputs.length);
    original(args);
  };
  try {
    await noGradAsync(() => peft.forward({ inputIds, adapterNames: ['lora_qv', 'lora', BASE_ADAPTER_NAME] }));
    // lora_qv has no k_proj adapter: that row reads k's base, inside the same call.
    assert.deepEqual(calls, [3, 1, 2, 1, 3, 1, 2, 1]);
    calls.length = 0;
    await noGradAsync(() => peft.forward({ inputIds, adapterNames: ['lora_qv', 'lora_qv', BASE_ADAPTER_NAME] }));
    assert.deepEqual(calls, [2, 2], 'only q and v have lora_qv: no call for the other projections');
  } finally {
    delete (backend as { multiLora?: unknown }).multiLora;
  }
});
