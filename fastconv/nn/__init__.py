"""Layers with explicit forward/backward, in PyTorch's vocabulary."""
from .activations import ELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .layers import AvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d
from .loss import CrossEntropyLoss
from .module import Module, Parameter, Sequential

__all__ = [
    "Parameter", "Module", "Sequential", "Conv2d", "MaxPool2d", "AvgPool2d", "Linear",
    "ReLU", "LeakyReLU", "ELU", "Tanh", "Sigmoid", "Dropout", "Flatten", "CrossEntropyLoss",
]
