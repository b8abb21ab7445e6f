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


def softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(logits / cap): near the identity for |logits| << cap, never beyond +-cap
    (Gemma 2, Gemma Team 2024; modded-nanogpt); cap 0 leaves the logits alone."""
    return cap * torch.tanh(logits / cap) if cap else logits


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, qk_norm: bool, qkv_norm: bool = False, attn_softcap: float = 0.0):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        # LayerNorm over each head's queries and keys (QK-norm), and values too (QKV-norm),
        # each with its own gain and bias
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm or qkv_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm or qkv_norm else nn.Identity()
        self.v_norm = nn.LayerNorm(self.head_dim) if qkv_norm else nn.Identity()
        self.attn_softcap = attn_softcap
        self.logit_max: torch.Tensor | None = None  # this forward's largest attention logit (detached)

    def forward(self, x):
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = self.q_norm(q), self.k_norm(k), self.v_norm(v)
        logits = softcap((q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim), self.attn_softcap)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        logits = logits.masked_fill(future, -math.inf)
        # the largest logit a query actually attends to (the masked future is not one)
        self.logit_max = logits.detach().amax()
        attn = logits.softmax(dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(b, t, w)
        return self.out(y)


class TransformerBlock(nn.Module):
    """Pre-LN: x + f(LN(x)) for attention, then the MLP. Reordered (OLMo 2, Team OLMo 2024):
    x + LN(f(x)), the norm on each sublayer's output. DeepNorm (alpha set): post-LN,
    LN(alpha x + f(x)) (Wang et al., 2022)."""

    def __init__(
        self,
        width: int,
        heads: int,
        activation: str,
        norm: str,
        qk_norm: bool,
        dropout: float,
        alpha: float | None,
        qkv_norm: bool = False,
        reordered: bool = False,
        attn_softcap: float = 0.0,
    ):
        super().__init__()
        ln = (lambda: nn.LayerNorm(width)) if norm == "layer" else nn.Identity
        self.ln1, self.ln2 = ln(), ln()
        self.attn = CausalSelfAttention(width, heads, qk_norm, qkv_norm, attn_softcap)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), ACTIVATIONS[activation](), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.alpha, self.reordered = alpha, reordered

    def forward(self, x):
        if self.alpha is not None:
            x = self.ln1(self.alpha * x + self.drop(self.attn(x)))
            return self.ln2(self.alpha * x + self.mlp(x))
        if self.reordered:
            x = x + self.ln1(self.drop(self.attn(x)))
            return x + self.ln2(self.mlp(x))
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """Token and position embeddings, `depth` pre-LN blocks, a final LayerNorm, and a
    linear head on the last position's state, or on every position's (output "sequence": a
    GPT, whose last forward's mean log Z and per-block output RMS it keeps, detached)."""

    def __init__(self, vocab: int, seq_len: int, num_outputs: int, m: dict):
        super().__init__()
        width = m["width"]
        deepnorm = m["residual_scale"] == "deepnorm"
        alpha = (2 * m["depth"]) ** 0.25 if deepnorm else None
        self.sequence = m["output"] == "sequence"
        self.softcap = m["softcap"]
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                width,
                m["heads"],
                m["activation"],
                m["norm"],
                m["qk_norm"],
                m["dropout"],
                alpha,
                qkv_norm=m["qkv_norm"],
                reordered=m["norm_position"] == "reordered",
                attn_softcap=m["attn_softcap"],
            )
            for _ in range(m["depth"])
        )
        # post-LN blocks end with their norm; a pre-LN stack needs one before the head (and
        # a reordered one too: its trunk is never normalized)
        self.ln_f = nn.LayerNorm(width) if m["norm"] == "layer" and not deepnorm else nn.Identity()
        self.head = nn.Linear(width, num_outputs)
        self.log_z: torch.Tensor | None = None
        self.block_rms: torch.Tensor | None = None

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        rms = []
        for block in self.blocks:
            x = block(x)
            if self.sequence:
                rms.append(x.detach().pow(2).mean())
        if not self.sequence:
            return softcap(self.head(self.ln_f(x[:, -1])), self.softcap)
        logits = softcap(self.head(self.ln_f(x)), self.softcap)
        with torch.no_grad():  # what z-loss penalizes, and its drift, read by the monitor
            self.log_z = torch.logsumexp(logits.detach().float(), dim=-1).mean()
            self.block_rms = torch.stack(rms).sqrt()
        return logits

    @property
    def output_log_z(self) -> torch.Tensor | None:
        """The mean over positions of log Z = logsumexp(output logits) of the last forward."""
        return self.log_z

    @property
    def layer_output_rms(self) -> torch.Tensor | None:
        """Each block's output RMS over the last forward (a tensor of `depth` values)."""
        return self.block_rms

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
