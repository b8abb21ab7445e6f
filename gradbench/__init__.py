"""gradbench: benchmark strategies against exploding gradients with PyTorch Lightning.

The subpackages follow the data flow (README, Architecture): core -> catalogue -> suite ->
training -> execution -> store -> analysis. Importing the package is cheap: torch and
lightning load only where training happens, so core/, store/ and analysis/ work on a
machine without them.
"""

__version__ = "0.1.0"
