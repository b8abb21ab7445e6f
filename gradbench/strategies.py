"""Deprecated: the strategy catalogue moved to gradbench.catalogue.strategies. Import the
decorator as `from gradbench import strategy`."""

from ._moved import alias

__getattr__ = alias(__name__, "gradbench.catalogue.strategies", "from gradbench import strategy")
