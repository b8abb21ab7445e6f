"""The transformer family: a small decoder-only (causal) Transformer that reads a token
sequence and classifies from its last position.

GPT-2's block layout (Radford et al., 2019): pre-LayerNorm, x + attn(LN(x)) then
x + mlp(LN(x)), learned positional embeddings, a final LayerNorm before the head. The
attention is written out (not F.scaled_dot_product_attention) because two things need its
logits: QK-LayerNorm (Dehghani et al., 2023; Wortsman et al., 2023), which normalizes
queries and keys per head before their product, and the record of the largest attention
logit, whose growth is how attention training goes unstable (Dehghani et al., 2023).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import ACTIVATIONS, init_weights
from .reparam import reparametrize


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, qk_norm: bool):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        # LayerNorm over each head's queries and keys, with its own gain and bias
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.logit_max: torch.Tensor | None = None  # this forward's largest attention logit (detached)

    def forward(self, x):
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        logits = logits.masked_fill(future, -math.inf)
        # the largest logit a query actually attends to (the masked future is not one)
        self.logit_max = logits.detach().amax()
        attn = logits.softmax(dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(b, t, w)
        return self.out(y)


class TransformerBlock(nn.Module):
    """Pre-LN: x + f(LN(x)) for attention, then the MLP. DeepNorm (alpha set): post-LN,
    LN(alpha x + f(x)) (Wang et al., 2022)."""

    def __init__(
        self, width: int, heads: int, activation: str, norm: str, qk_norm: bool, dropout: float, alpha: float | None
    ):
        super().__init__()
        ln = (lambda: nn.LayerNorm(width)) if norm == "layer" else nn.Identity
        self.ln1, self.ln2 = ln(), ln()
        self.attn = CausalSelfAttention(width, heads, qk_norm)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), ACTIVATIONS[activation](), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.alpha = alpha

    def forward(self, x):
        if self.alpha is not None:
            x = self.ln1(self.alpha * x + self.drop(self.attn(x)))
            return self.ln2(self.alpha * x + self.mlp(x))
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """Token and position embeddings, `depth` pre-LN blocks, a final LayerNorm, and a
    linear head on the last position's state."""

    def __init__(self, vocab: int, seq_len: int, num_outputs: int, m: dict):
        super().__init__()
        width = m["width"]
        deepnorm = m["residual_scale"] == "deepnorm"
        alpha = (2 * m["depth"]) ** 0.25 if deepnorm else None
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(
            TransformerBlock(width, m["heads"], m["activation"], m["norm"], m["qk_norm"], m["dropout"], alpha)
            for _ in range(m["depth"])
        )
        # post-LN blocks end with their norm; a pre-LN stack needs one before the head
        self.ln_f = nn.LayerNorm(width) if m["norm"] == "layer" and not deepnorm else nn.Identity()
        self.head = nn.Linear(width, num_outputs)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x[:, -1]))

    @property
    def attention_logit_max(self) -> torch.Tensor | None:
        """The largest attention logit of the last forward over every layer and head (a
        tensor: reading it is no host sync)."""
        maxima = [b.attn.logit_max for b in self.blocks if b.attn.logit_max is not None]
        return torch.stack(maxima).amax() if maxima else None


def transformer(input_shape, num_outputs, **m) -> nn.Module:
    """input_shape is (seq_len, vocab): a sequence of token ids drawn from `vocab`.
    `m`: the family's checked knobs (catalogue/model_knobs.py), all of them."""
    seq_len, vocab = input_shape
    net = init_weights(TinyTransformer(vocab, seq_len, num_outputs, m), m["init"], m["activation"])
    if m["residual_scale"] == "deepnorm":
        deepnorm_init(net, m["depth"])
    return reparametrize(net, m["reparam"])


def deepnorm_init(net: TinyTransformer, depth: int) -> None:
    """DeepNorm's initialization for a decoder-only stack of N blocks (Wang et al., 2022):
    Xavier-normal weights, with gain beta = (8N)^(-1/4) for the value and output projections
    and both MLP layers, gain 1 for the queries and keys."""
    beta = (8 * depth) ** -0.25
    with torch.no_grad():
        for block in net.blocks:
            w = block.attn.qkv.weight.view(3, -1, block.attn.qkv.in_features)
            for part, gain in zip(w, (1.0, 1.0, beta)):
                nn.init.xavier_normal_(part, gain=gain)
            for layer in (block.attn.out, block.mlp[0], block.mlp[2]):
                nn.init.xavier_normal_(layer.weight, gain=beta)
