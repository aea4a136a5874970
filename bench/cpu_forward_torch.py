"""PyTorch CPU baseline for bench/cpu_forward: the same Llama shape, forward and a LoRA r16 training step.

Runs with Debian's python3-torch (+ libopenblas0-pthread) on the same 2-core machine, in the same bench run
as loraforge. LoRA is written out (frozen base linear + A, B) because PEFT is not packaged for Debian; the
arithmetic is PEFT's: y = base(x) + (x @ A^T @ B^T) * alpha / r.
Prints one JSON line per case.
"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(cfg["threads"])
H, L, NH, NKV, I, V = cfg["hidden"], cfg["layers"], cfg["heads"], cfg["kv_heads"], cfg["intermediate"], cfg["vocab"]
D = H // NH
B, T, R = cfg["batch"], cfg["seq"], cfg["rank"]


class LoraLinear(nn.Module):
    def __init__(self, i, o, r):
        super().__init__()
        self.base = nn.Linear(i, o, bias=False)
        self.base.weight.requires_grad_(False)
        self.r = r
        if r:
            self.A = nn.Parameter(torch.randn(r, i) * 0.01)
            self.B = nn.Parameter(torch.zeros(o, r))

    def forward(self, x):
        y = self.base(x)
        if self.r:
            y = y + (x @ self.A.t() @ self.B.t()) * (16 / self.r)
        return y


class RMSNorm(nn.Module):
    """transformers' LlamaRMSNorm (torch 1.13, Debian's build, has no nn.RMSNorm)."""

    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def attention(q, k, v):
    """Causal GQA attention: SDPA where torch has it (2.x), else transformers' eager path."""
    k = k.repeat_interleave(NH // NKV, 1)
    v = v.repeat_interleave(NH // NKV, 1)
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def rope(x, cos, sin):
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Layer(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.q, self.k, self.v, self.o = LoraLinear(H, NH * D, r), LoraLinear(H, NKV * D, r), LoraLinear(H, NKV * D, r), LoraLinear(NH * D, H, r)
        self.g, self.u, self.d = LoraLinear(H, I, r), LoraLinear(H, I, r), LoraLinear(I, H, r)
        self.n1, self.n2 = RMSNorm(H, 1e-5), RMSNorm(H, 1e-5)
        for n in (self.n1, self.n2):
            n.weight.requires_grad_(False)

    def forward(self, x, cos, sin):
        h = self.n1(x)
        q = rope(self.q(h).view(B, T, NH, D).transpose(1, 2), cos, sin)
        k = rope(self.k(h).view(B, T, NKV, D).transpose(1, 2), cos, sin)
        v = self.v(h).view(B, T, NKV, D).transpose(1, 2)
        a = attention(q, k, v)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, H))
        h = self.n2(x)
        return x + self.d(F.silu(self.g(h)) * self.u(h))


class Model(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.emb.weight.requires_grad_(False)
        self.layers = nn.ModuleList([Layer(r) for _ in range(L)])
        self.norm = RMSNorm(H, 1e-5)
        self.norm.weight.requires_grad_(False)
        self.head = nn.Linear(H, V, bias=False)
        self.head.weight.requires_grad_(False)
        inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
        f = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((f, f), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def forward(self, ids, labels=None):
        x = self.emb(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        logits = self.head(self.norm(x))
        if labels is None:
            return logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))


def timed(fn, iters):
    fn()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


ids = torch.randint(0, V, (B, T))
base = Model(0)
with torch.no_grad():
    s = timed(lambda: base(ids), cfg["iters"])
print(json.dumps({"case": "forward", "impl": "pytorch", "torch": torch.__version__, "threads": cfg["threads"], "tokens_per_s": round(B * T / s, 1)}), flush=True)
del base
lora = Model(R)
opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-4)


def step():
    opt.zero_grad()
    loss = lora(ids, ids)
    loss.backward()
    opt.step()


s = timed(step, cfg["iters"])
print(json.dumps({"case": "lora_train_step", "impl": "pytorch", "torch": torch.__version__, "threads": cfg["threads"], "rank": R, "tokens_per_s": round(B * T / s, 1)}), flush=True)
