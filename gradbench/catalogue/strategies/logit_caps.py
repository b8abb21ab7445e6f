"""Soft caps on logits: c * tanh(z / c), near the identity for |z| << c and never beyond
+-c, so a logit cannot grow without bound however large the weights get. Gemma 2 caps the
attention logits at 50 and the output logits at 30 (Gemma Team, 2024); modded-nanogpt caps
the output logits (at 30, later 15). Both act inside the transformer family's model
(training/transformer.py: softcap)."""

from __future__ import annotations

from ...core.spec import RunSpec
from .base import Positive, strategy


@strategy(family="logit caps", applies_to=("transformer",), slot="output cap", tune="cap")
def softcap(spec: RunSpec, cap: Positive = 30.0) -> RunSpec:
    """Output-logit soft-capping: logits = cap * tanh(logits / cap) (Gemma 2, Gemma Team, 2024; modded-nanogpt)."""
    return spec.with_model(softcap=cap)


@strategy(family="logit caps", applies_to=("transformer",), slot="attention cap", tune="cap")
def attn_softcap(spec: RunSpec, cap: Positive = 50.0) -> RunSpec:
    """Attention-logit soft-capping: each q.k/sqrt(d) = cap * tanh(q.k/sqrt(d) / cap) before the softmax (Gemma 2, Gemma Team, 2024)."""
    return spec.with_model(attn_softcap=cap)
