"""Layers with explicit forward/backward, in PyTorch's vocabulary (one module per family,
as ``torch.nn.modules``)."""
from .activation import ELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .container import Concat, Residual, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss
from .module import Module, Parameter, StateDictError
from .norm import BatchNorm1d, BatchNorm2d
from .pool import AvgPool2d, MaxPool2d
from .activation import Identity, LogSoftmax, Softmax
from .pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, Maxout
from .merge import Add, Cat, Split
from .padding import CircularPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d, ZeroPad2d
from .graph import Graph, GraphNode
from . import init  # noqa: E402  (torch.nn.init's functions)
from . import utils  # noqa: E402  (torch.nn.utils: clip_grad_norm_)

__all__ = [
    "Parameter", "Module", "StateDictError", "Sequential", "Conv2d", "MaxPool2d", "AvgPool2d", "Linear",
    "ReLU", "LeakyReLU", "ELU", "Tanh", "Sigmoid", "Dropout", "Flatten", "CrossEntropyLoss",
    "Residual", "Concat", "init", "BatchNorm1d", "BatchNorm2d",
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Maxout", "Softmax", "LogSoftmax", "Identity",
    "Graph", "GraphNode", "Add", "Cat", "Split", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d",
    "ReplicationPad2d", "CircularPad2d",
]
