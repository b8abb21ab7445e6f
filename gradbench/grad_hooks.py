"""Deprecated: gradient hooks moved to gradbench.catalogue.grad_hooks. Import the decorator as
`from gradbench import grad_hook`."""

from ._moved import alias

__getattr__ = alias(__name__, "gradbench.catalogue.grad_hooks", "from gradbench import grad_hook")
