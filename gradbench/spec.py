"""Deprecated: the run spec moved to gradbench.core.spec. Import it as
`from gradbench import RunSpec`."""

from ._moved import alias

__getattr__ = alias(__name__, "gradbench.core.spec", "from gradbench import RunSpec")
