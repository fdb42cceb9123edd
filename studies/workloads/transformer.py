"""A character-level causal Transformer language model, nanoGPT's shape cut down to a CPU.

Claims (checked in ``tests/studies/workloads/test_transformer.py``):

- Token and learned position embeddings, ``layers`` blocks of causal multi-head
  self-attention and a 4x GELU MLP, a final projection to the vocabulary. No dropout (a
  study's trials differ only by their optimizer, lr, warmup and seed).
- ``norm="post"`` (the default) is the original Transformer's Post-LN, the setting in which
  Liu et al. (2019) and Xiong et al. (2020) see Adam fail without warmup:
  ``x = LN(x + attn(x)); x = LN(x + mlp(x))``. ``norm="pre"`` is GPT-2's Pre-LN:
  ``x = x + attn(LN(x)); x = x + mlp(LN(x))``, with a final LN before the output.
- Causal: the logits at position t depend on characters 0..t only.
- ``forward(ids [B, T]) -> logits [B, vocab, T]``: classes in dimension 1, as
  ``cross_entropy`` and ``argmax(dim=1)`` take them for ``[B, T]`` targets, so the trainers'
  image-classification loss and accuracy apply unchanged (per character).
- Plain tensor ops (attention written out, the mask a buffer): runs under
  ``torch.func.vmap`` for packed trials and under bf16 autocast.
- Init as nanoGPT: weights normal(0, 0.02), the residual projections 0.02/sqrt(2 layers),
  biases zero, LayerNorms weight 1 bias 0.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Norm = Literal["post", "pre"]


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, context: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        blocked = torch.ones(context, context, dtype=torch.bool).triu(diagonal=1)
        self.blocked: Tensor
        self.register_buffer("blocked", blocked, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.heads))
        scores = scores.masked_fill(self.blocked[:t, :t], float("-inf"))
        out = F.softmax(scores, dim=-1) @ v  # [b, heads, t, d/heads]
        return self.proj(out.transpose(1, 2).reshape(b, t, d))  # type: ignore[no-any-return]


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int, context: int, norm: Norm) -> None:
        super().__init__()
        self.norm = norm
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, heads, context)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.proj = nn.Linear(4 * d_model, d_model)

    def mlp(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x)))  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> Tensor:
        if self.norm == "post":
            x = self.ln1(x + self.attn(x))
            return self.ln2(x + self.mlp(x))  # type: ignore[no-any-return]
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """``layers`` blocks of width ``d_model`` over ``context`` characters of ``vocab``."""

    def __init__(
        self,
        vocab: int,
        *,
        context: int = 64,  # characters
        d_model: int = 64,
        layers: int = 2,
        heads: int = 4,
        norm: Norm = "post",
    ) -> None:
        super().__init__()
        if norm not in ("post", "pre"):
            raise ValueError(f"norm must be 'post' or 'pre', got {norm!r}")
        self.context = context
        self.norm = norm
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, context, norm) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab)
        self._init(layers)

    def _init(self, layers: int) -> None:
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)  # LayerNorm weights keep their 1

    def forward(self, ids: Tensor) -> Tensor:
        t = ids.shape[-1]
        if t > self.context:
            raise ValueError(f"{t} characters, more than the context of {self.context}")
        x = self.tokens(ids) + self.positions.weight[:t]
        for block in self.blocks:
            x = block(x)
        logits: Tensor = self.head(self.ln_f(x))  # [B, T, vocab]
        return logits.transpose(1, 2)  # [B, vocab, T]
