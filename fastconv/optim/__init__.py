"""Optimizers over :class:`fastconv.nn.Parameter` lists or parameter groups (one per file,
as ``torch.optim``) and learning-rate schedulers (:mod:`fastconv.optim.lr_scheduler`).

Update rules, hyper-parameter names, ``param_groups`` and ``state_dict`` layouts are
PyTorch's, so settings carry over.
"""
from . import lr_scheduler
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
