"""PyTorch + PEFT LoRA training throughput: the baseline bench/train_gpu.ts is compared with.

Random weights with the shapes of bench/shapes.json built directly on the GPU in bf16, SDPA attention, LoRA r=16 alpha 16
dropout 0 on all seven projections (mixture-of-experts shapes: attention, plus the experts through target_parameters;
adapters in float32, PEFT's default autocast_adapter_dtype), torch AdamW,
no gradient checkpointing. Warm-up steps, then timed steps between two synchronisations. One JSON line per shape:
  {stack, shape, batch, seq, tokens_per_s, step_ms, peak_gib, peak_reserved_gib, ...}
peak_gib is torch.cuda.max_memory_allocated (live tensors, as loraforge's allocator counts in-use blocks);
peak_reserved_gib is max_memory_reserved (what the caching allocator held from the driver).

Usage: python3 bench/peft_baseline.py [llama-1b|llama-8b ...] [--steps N] [--warmup N]
"""

import argparse
import json
import sys
import time

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from random_llama import SHAPES as MODEL_SHAPES, TARGETS, random_model

SHAPES = {
    "llama-1b": dict(MODEL_SHAPES["llama-1b"], batch=4, seq=2048),
    "llama-8b": dict(MODEL_SHAPES["llama-8b"], batch=1, seq=2048),
    "qwen3-8b": dict(MODEL_SHAPES["qwen3-8b"], batch=1, seq=2048),
    "qwen3-8b-8k": dict(MODEL_SHAPES["qwen3-8b"], batch=1, seq=8192),
    "gemma3-4b": dict(MODEL_SHAPES["gemma3-4b"], batch=1, seq=2048),
    "gemma3-4b-8k": dict(MODEL_SHAPES["gemma3-4b"], batch=1, seq=8192),
    # Mixture of experts: LoRA on attention plus the experts (target_parameters), and on attention only.
    "gpt-oss-20b": dict(MODEL_SHAPES["gpt-oss-20b"], batch=1, seq=2048, targets="experts"),
    "gpt-oss-20b-attn": dict(MODEL_SHAPES["gpt-oss-20b"], batch=1, seq=2048, targets="attention"),
    "qwen3-30b-a3b": dict(MODEL_SHAPES["qwen3-30b-a3b"], batch=1, seq=2048, targets="experts"),
    "qwen3-30b-a3b-attn": dict(MODEL_SHAPES["qwen3-30b-a3b"], batch=1, seq=2048, targets="attention"),
}
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
EXPERTS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
GIB = 2**30


def build(shape: dict) -> torch.nn.Module:
    dims = {k: v for k, v in shape.items() if k not in ("batch", "seq", "targets")}
    model = random_model(dims, use_cache=False)
    targets = shape.get("targets", "all")
    lora = LoraConfig(
        r=16,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=TARGETS if targets == "all" else ATTENTION,
        target_parameters=EXPERTS if targets == "experts" else None,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    return model


def run(name: str, steps: int, warmup: int) -> dict:
    shape = SHAPES[name]
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = build(shape)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    batch, seq = shape["batch"], shape["seq"]
    generator = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(0, shape["vocab_size"], (batch, seq), device="cuda", generator=generator)
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0

    def step() -> None:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "stack": "pytorch+peft",
        "shape": name,
        "batch": batch,
        "seq": seq,
        "lora_targets": shape.get("targets", "all"),
        "trainable_params": sum(p.numel() for p in params),
        "steps": steps,
        "tokens_per_s": round(batch * seq * steps / seconds),
        "step_ms": round(1000 * seconds / steps, 2),
        "peak_gib": round(torch.cuda.max_memory_allocated() / GIB, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 2),
        "build_s": round(build_s, 1),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    del model, optimizer, params
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shapes", nargs="*", default=list(SHAPES))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    for name in args.shapes:
        if name not in SHAPES:
            sys.exit(f"unknown shape {name!r}; shapes: {', '.join(SHAPES)}")
        print(json.dumps(run(name, args.steps, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
