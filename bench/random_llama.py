"""Random-weight models for the PyTorch baselines (bench/peft_baseline.py, bench/peft_serve_baseline.py).

The shapes come from bench/shapes.json, which bench/random-llama.ts reads too, so both stacks build the same
models; the seven projections LoRA targets there; and a builder that makes the model directly on the GPU in bf16
(no float32 copy on the way) with SDPA attention.
"""

import json
import os

import torch
from transformers import AutoConfig, AutoModelForCausalLM

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes.json")) as _f:
    SHAPES = {k: v for k, v in json.load(_f).items() if not k.startswith("_")}
LLAMA_1B = SHAPES["llama-1b"]
LLAMA_8B = SHAPES["llama-8b"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def random_model(fields: dict, **config) -> torch.nn.Module:
    """The causal LM of config.json `fields` plus further config fields `config`, random bf16 weights on the GPU."""
    merged = {k: v for k, v in {**fields, **config}.items() if k not in ("architectures", "model_type")}
    model_config = AutoConfig.for_model(fields["model_type"], **merged)
    model_config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(model_config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(torch.bfloat16)

