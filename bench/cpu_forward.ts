/**
 * CPU throughput beside PyTorch, in one run on this machine: forward tokens/s and a LoRA r16 training step
 * (forward + backward + AdamW) on a ~30M-parameter Llama config with random weights, plus the peak resident
 * memory of loading that checkpoint. Prints one JSON line per case.
 *
 *   npm run build && node dist/bench/cpu_forward.js            (installs nothing; bench/cpu_forward.sh does)
 *   LORAFORGE_BLAS=none node dist/bench/cpu_forward.js --no-torch   (the built-in GEMM alone)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoModelForCausalLM, getPeftModel, scopeAsync } from '../src/index.js';
import { gemmInfo } from '../src/backend/cpu/gemm.js';
import { writeSafetensors } from '../src/io/safetensors-writer.js';
import { AdamW } from '../src/optim/index.js';
import { Rng } from '../src/tensor/random.js';

const cfg = { hidden: 512, layers: 8, heads: 8, kv_heads: 4, intermediate: 1408, vocab: 8192, batch: 4, seq: 256, rank: 16, threads: 2, iters: 3 };

async function writeRandomCheckpoint(dir: string): Promise<number> {
  const H = cfg.hidden, I = cfg.intermediate, D = H / cfg.heads;
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [cfg.vocab, H]], ['model.norm.weight', [H]], ['lm_head.weight', [cfg.vocab, H]]];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}`;
    shapes.push([`${p}.self_attn.q_proj.weight`, [cfg.heads * D, H]], [`${p}.self_attn.k_proj.weight`, [cfg.kv_heads * D, H]], [`${p}.self_attn.v_proj.weight`, [cfg.kv_heads * D, H]], [`${p}.self_attn.o_proj.weight`, [H, cfg.heads * D]]);
    shapes.push([`${p}.mlp.gate_proj.weight`, [I, H]], [`${p}.mlp.up_proj.weight`, [I, H]], [`${p}.mlp.down_proj.weight`, [H, I]]);
    shapes.push([`${p}.input_layernorm.weight`, [H]], [`${p}.post_attention_layernorm.weight`, [H]]);
  }
  const rng = new Rng(1);
  let bytes = 0;
  await writeSafetensors(
    join(dir, 'model.safetensors'),
    shapes.map(([name, shape]) => ({
      name,
      dtype: 'float32' as const,
      shape,
      data: async () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const v = new Float32Array(n);
        const isNorm = shape.length === 1;
        for (let i = 0; i < n; i++) v[i] = isNorm ? 1 : rng.normal() * 0.02;
        bytes += v.byteLength;
        return new Uint8Array(v.buffer);
      },
    })),
  );
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: I, num_hidden_layers: cfg.layers,
    num_attention_heads: cfg.heads, num_key_value_heads: cfg.kv_heads, vocab_size: cfg.vocab, rms_norm_eps: 1e-5, rope_theta: 10000,
    max_position_embeddings: 2048, tie_word_embeddings: false, dtype: 'float32',
  }));
  return bytes;
}

function randomIds(rng: Rng): number[][] {
  return Array.from({ length: cfg.batch }, () => Array.from({ length: cfg.seq }, () => rng.int(cfg.vocab)));
}

async function timed(iters: number, fn: () => Promise<void>): Promise<number> {
  await fn();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  return (performance.now() - t0) / 1000 / iters;
}

const self = fileURLToPath(import.meta.url);
if (process.argv[2] === '--load-rss') {
  // Child process: load the checkpoint and report peak RSS, so the parent's heap does not count.
  const before = process.memoryUsage().rss;
  const model = await AutoModelForCausalLM.fromPretrained(process.argv[3]!, { dtype: 'float32' });
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ before, peak, params: [...model.namedParameters()].length }));
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'loraforge-bench-'));
try {
  const weightBytes = await writeRandomCheckpoint(dir);
  const child = spawnSync(process.execPath, [self, '--load-rss', dir], { encoding: 'utf8' });
  const rss = JSON.parse(child.stdout.trim().split('\n').pop()!) as { before: number; peak: number };
  console.log(JSON.stringify({ case: 'load_peak_rss', impl: 'loraforge', weights_mib: +(weightBytes / 2 ** 20).toFixed(1), peak_rss_mib: +(rss.peak / 2 ** 20).toFixed(1), baseline_rss_mib: +(rss.before / 2 ** 20).toFixed(1), overhead_ratio: +((rss.peak - rss.before) / weightBytes).toFixed(3) }));

  const gemm = gemmInfo();
  const rng = new Rng(2);
  const ids = randomIds(rng);
  const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype: 'float32' });
  const tokens = cfg.batch * cfg.seq;
  const fwd = await timed(cfg.iters, async () => {
    await scopeAsync(async () => {
      const { logits } = model.run({ inputIds: ids });
      await logits.data();
    });
  });
  console.log(JSON.stringify({ case: 'forward', impl: 'loraforge', gemm: gemm.implementation, threads: gemm.threads, tokens_per_s: +(tokens / fwd).toFixed(1) }));

  const peft = getPeftModel(model, { r: cfg.rank, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  const opt = new AdamW(peft.trainableParameters(), { lr: 1e-4 });
  const step = await timed(cfg.iters, async () => {
    await scopeAsync(async () => {
      const { loss } = peft.run({ inputIds: ids, labels: ids });
      await loss!.backward();
      opt.step();
      opt.zeroGrad();
      await loss!.item();
    });
  });
  console.log(JSON.stringify({ case: 'lora_train_step', impl: 'loraforge', gemm: gemm.implementation, rank: cfg.rank, tokens_per_s: +(tokens / step).toFixed(1) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv.includes('--no-torch')) process.exit(0);
const torch = spawnSync(process.env['PYTHON'] ?? '/usr/bin/python3', [join(self, '..', '..', '..', 'bench', 'cpu_forward_torch.py'), JSON.stringify(cfg)], { encoding: 'utf8' });
if (torch.status === 0) process.stdout.write(torch.stdout);
else console.log(JSON.stringify({ case: 'pytorch', error: (torch.stderr || 'python3 with torch not found; run bench/cpu_forward.sh').trim().split('\n').pop() }));
