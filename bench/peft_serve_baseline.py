"""transformers + PEFT multi-adapter generation: the baseline bench/serve.ts is compared with on the GPU.

Random weights with real Llama shapes built on the GPU in bf16 (SDPA attention), LoRA r=16 alpha 16 on all seven
projections (init_lora_weights=False: random A and B; adapters in float32, PEFT's default autocast_adapter_dtype).
One batch of `batch` random prompts, greedy, exactly `new` tokens per row (EOS off). Cases, as in bench/serve.ts:
  adapters=0   the plain transformers model (no PEFT wrapper): base alone
  adapters=1   one adapter, unmerged, active for every row (set_adapter)
  adapters=N   N distinct adapters, rows spread round-robin, one batch (generate(..., adapter_names=[...]))
Each case: a warm-up (a whole generate for the base and one-adapter cases), then generate timed between two synchronisations, and a prefill-only generate
(max_new_tokens=1) timed the same way, so decode tokens/s = batch * (new - 1) / (t_generate - t_prefill) is
comparable with bench/serve.ts's decode_tokens_per_s. One JSON line per case.

Usage: python3 bench/peft_serve_baseline.py [--shape llama-1b] [--batch 64] [--prompt 128] [--new 128]
                                            [--adapters 0,1,8,64]
"""

import argparse
import json
import time

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from random_llama import SHAPES as MODEL_SHAPES, TARGETS, random_model

SHAPES = {
    "small": MODEL_SHAPES["small"],
    "llama-1b": MODEL_SHAPES["llama-1b"],
    "qwen3-8b": MODEL_SHAPES["qwen3-8b"],
}


def build(shape: dict) -> torch.nn.Module:
    model = random_model(shape).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(model, ids: torch.Tensor, new: int, extra: dict, full_warmup: bool) -> tuple[float, float]:
    """(decode tokens/s, end-to-end tokens/s) of one greedy generate of `new` tokens per row. full_warmup runs one
    whole generate first (the fast cases: their first full-length run pays for cache and allocator growth)."""
    mask = torch.ones_like(ids)

    def generate(tokens: int):
        return lambda: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                                      do_sample=False, **extra)

    with torch.inference_mode():
        timed(generate(new if full_warmup else 4))
        prefill = timed(generate(1))
        full = timed(generate(new))
    rows = ids.shape[0]
    return rows * (new - 1) / (full - prefill), rows * new / full


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="llama-1b", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--adapters", default="0,1,8,64")
    args = parser.parse_args()
    counts = [int(c) for c in args.adapters.split(",")]

    torch.manual_seed(0)
    model = build(SHAPES[args.shape])
    generator = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(0, SHAPES[args.shape]["vocab_size"], (args.batch, args.prompt), device="cuda", generator=generator)
    common = dict(bench="serve", stack=f"transformers {transformers.__version__} + peft {peft.__version__}", device="cuda",
                  dtype="bfloat16", shape=args.shape, batch=args.batch, prompt_tokens=args.prompt, new_tokens=args.new)

    base = None
    if 0 in counts:
        decode, end_to_end = measure(model, ids, args.new, {}, True)
        base = decode
        print(json.dumps({**common, "adapters": 0, "decode_tokens_per_s": round(decode, 1),
                          "end_to_end_tokens_per_s": round(end_to_end, 1), "relative_to_base": 1.0}), flush=True)

    most = max(counts)
    if most == 0:
        return
    lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, init_lora_weights=False,
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora, adapter_name="adapter-0")
    for i in range(1, most):
        peft_model.add_adapter(f"adapter-{i}", lora)
    peft_model.eval()
    for count in [c for c in counts if c > 0]:
        if count == 1:
            peft_model.set_adapter("adapter-0")
            extra = {}
        else:
            extra = {"adapter_names": [f"adapter-{i % count}" for i in range(args.batch)]}
        decode, end_to_end = measure(peft_model, ids, args.new, extra, count <= 1)
        print(json.dumps({**common, "adapters": count, "decode_tokens_per_s": round(decode, 1),
                          "end_to_end_tokens_per_s": round(end_to_end, 1),
                          "relative_to_base": round(decode / base, 3) if base else None}), flush=True)


if __name__ == "__main__":
    main()
