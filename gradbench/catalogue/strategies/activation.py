"""Activation functions: the nonlinearity of every hidden layer (model knob `activation`).

relu and tanh also apply to the rnn family, where they set the vanilla cell's nonlinearity
(nn.RNN takes only these two); LSTM/GRU cells have fixed internal nonlinearities, so on them
tanh is the cell's own and relu is refused (see architecture.lstm/gru). On the transformer
they set the MLP's nonlinearity (GELU by default).
"""

from ...core.errors import UserError
from ...core.spec import RunSpec
from ..tasks import TASKS
from .base import ANY, strategy

FF = ("mlp", "cnn", "transformer")  # every hidden activation is a free choice there


def _set(spec: RunSpec, activation: str) -> RunSpec:
    cell = spec.model.get("cell", "rnn")
    if TASKS.get(spec.task).model_family == "rnn" and cell != "rnn" and activation != "tanh":
        raise UserError(
            f"{activation}: a gated cell ({cell}) has fixed tanh/sigmoid nonlinearities; "
            f"it cannot take activation {activation!r} (drop the activation strategy)"
        )
    return spec.with_model(activation=activation)


@strategy(family="activation", applies_to=ANY, slot="activation")
def relu(spec: RunSpec) -> RunSpec:
    """ReLU, max(0, x) (Nair & Hinton, 2010); for the rnn family, a ReLU vanilla cell (Le et al., 2015)."""
    return _set(spec, "relu")


@strategy(family="activation", applies_to=FF, slot="activation")
def leaky_relu(spec: RunSpec) -> RunSpec:
    """Leaky ReLU with negative slope 0.01 (Maas et al., 2013)."""
    return _set(spec, "leaky_relu")


@strategy(family="activation", applies_to=FF, slot="activation")
def elu(spec: RunSpec) -> RunSpec:
    """ELU, alpha 1 (Clevert et al., 2016)."""
    return _set(spec, "elu")


@strategy(family="activation", applies_to=FF, slot="activation")
def selu(spec: RunSpec) -> RunSpec:
    """SELU, self-normalizing (Klambauer et al., 2017)."""
    return _set(spec, "selu")


@strategy(family="activation", applies_to=FF, slot="activation")
def gelu(spec: RunSpec) -> RunSpec:
    """GELU, x * Phi(x) (Hendrycks & Gimpel, 2016)."""
    return _set(spec, "gelu")


@strategy(family="activation", applies_to=ANY, slot="activation")
def tanh(spec: RunSpec) -> RunSpec:
    """tanh, bounded and zero-centred (LeCun et al., 1998, Efficient BackProp); the rnn default."""
    return _set(spec, "tanh")


@strategy(family="activation", applies_to=FF, slot="activation")
def sigmoid(spec: RunSpec) -> RunSpec:
    """Logistic sigmoid, the classic saturating unit (Rumelhart et al., 1986)."""
    return _set(spec, "sigmoid")


@strategy(family="activation", applies_to=FF, slot="activation")
def softplus(spec: RunSpec) -> RunSpec:
    """Softplus, log(1 + e^x), a smooth ReLU (Dugas et al., 2001)."""
    return _set(spec, "softplus")
