"""Which optimizers share a learning-rate unit. An absolute learning-rate grid (a tuning
protocol's lr_grid) is declared per family, so the maximum stable learning rates of the arms in
one family compare in the same units; across families they do not (Adam's 1e-3 is not SGD's
1e-3), and the page compares those by headroom, which is unit-free. No torch.

A family groups the optimizers whose step is the learning rate times a normalised gradient of
the same scale: the Adam-like ones divide by a running second moment. Optimizers whose lr means
something else (Adagrad's accumulated denominator, Adadelta's unit-free rate, Lion's sign step,
Muon's orthogonalised step, LAMB's and LARS's trust ratios, Adafactor's relative step) are each
a family of their own, as is any optimizer this table does not name.
"""

from __future__ import annotations

FAMILIES: dict[str, str] = {
    "sgd": "sgd",  # with or without (Nesterov) momentum: the spec's optimizer name is sgd for all three
    "adam": "adam",
    "adamw": "adam",
    "stable_adamw": "adam",
    "adam_atan2": "adam",
    "spam": "adam",
    "rmsprop": "adam",
}
KNOWN = ("sgd", "adam", "adagrad", "adadelta", "adafactor", "lamb", "lars", "lion", "muon")


def family(optimizer: str) -> str:
    """The family of an optimizer named as a run spec names it (spec.optimizer["name"])."""
    return FAMILIES.get(optimizer, optimizer)
