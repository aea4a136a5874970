"""Random-weight Llama models for the PyTorch baselines (bench/peft_baseline.py, bench/peft_serve_baseline.py).

The real Llama shapes the benchmarks share, the seven projections LoRA targets there, and a builder that makes the
model directly on the GPU in bf16 (no float32 copy on the way) with SDPA attention.
"""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

LLAMA_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True)
LLAMA_8B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def random_llama(dims: dict, **config) -> LlamaForCausalLM:
    """LlamaForCausalLM with shape `dims` and further LlamaConfig fields `config`, random bf16 weights on the GPU."""
    llama_config = LlamaConfig(**dims, rms_norm_eps=1e-5, max_position_embeddings=131072, attn_implementation="sdpa",
                               **config)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(llama_config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(torch.bfloat16)
