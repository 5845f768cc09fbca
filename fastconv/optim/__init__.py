"""Optimizers over :class:`fastconv.nn.Parameter` lists (one per file, as ``torch.optim``).

Update rules are PyTorch's, so hyper-parameters carry over.
"""
from .adam import Adam
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam"]
