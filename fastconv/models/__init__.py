"""Ready-made models; ``MODELS`` maps each ``config["model"]`` name to its builder."""
from .lenet import lenet5

MODELS = {"lenet5": lenet5}

__all__ = ["lenet5", "MODELS"]
