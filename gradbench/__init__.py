"""gradbench: benchmark strategies against exploding gradients with PyTorch Lightning.

Importing the package is cheap: torch and lightning load only where training happens,
so `results`, `scoring` and `leaderboard` work on a machine without them.
"""

__version__ = "0.1.0"
