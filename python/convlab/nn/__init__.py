"""convlab.nn: layers, losses and the Module machinery, shaped like torch.nn."""
from . import functional, init
from .layers import (AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d,
                     ConvTranspose1d, ConvTranspose2d, Dropout, Flatten, LeakyReLU, Linear, MaxPool1d, MaxPool2d,
                     ReLU, Sigmoid, Tanh)
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import LoadStateDictError, Module, Parameter, Sequential

__all__ = [
    "functional", "init", "Module", "Parameter", "Sequential", "LoadStateDictError",
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d", "AvgPool1d",
    "AvgPool2d", "AdaptiveAvgPool2d", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Flatten", "Dropout",
    "BatchNorm1d", "BatchNorm2d", "CrossEntropyLoss", "NLLLoss", "MSELoss",
]
