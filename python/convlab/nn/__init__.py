"""convlab.nn: layers, losses and the Module machinery, shaped like torch.nn."""
from . import functional, init, utils
from .layers import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d,
                     AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, Dropout,
                     Dropout1d, Dropout2d, ELU, Embedding, Flatten, GELU, GroupNorm, Hardsigmoid, Hardswish,
                     Hardtanh, Identity, InstanceNorm1d, InstanceNorm2d, LayerNorm, LeakyReLU, Linear, LogSigmoid,
                     LogSoftmax, MaxPool1d, MaxPool2d, Mish, PReLU, ReLU, ReLU6, SiLU, Sigmoid, Softmax, Softplus,
                     Tanh, Unflatten, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d)
from .layers import (ConstantPad1d, ConstantPad2d, CosineSimilarity, LocalResponseNorm, PairwiseDistance,
                     PixelShuffle, PixelUnshuffle, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
                     ReplicationPad2d, ZeroPad1d, ZeroPad2d)
from .layers import Fold, Unfold
from .layers import LocallyConnected1d, LocallyConnected2d, TiledConv2d
from .lazy import (LazyBatchNorm1d, LazyBatchNorm2d, LazyConv1d, LazyConv2d, LazyConvTranspose1d, LazyConvTranspose2d,
                   LazyLinear)
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss,
                   SmoothL1Loss)
from .module import (LoadStateDictError, Module, ModuleDict, ModuleList, Parameter, ParameterDict, ParameterList,
                     RemovableHandle, Sequential)

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
    "ParameterList", "ParameterDict", "RemovableHandle", "LoadStateDictError",
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "LazyConv1d", "LazyConv2d", "LazyConvTranspose1d",
    "LazyConvTranspose2d", "Linear", "LazyLinear", "Identity", "Embedding",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "LogSigmoid", "Hardtanh", "Hardsigmoid", "Hardswish", "SiLU",
    "Sigmoid", "Tanh", "PReLU", "Softplus", "Mish",
    "Softmax", "LogSoftmax", "Flatten", "Unflatten", "Dropout", "Dropout1d", "Dropout2d",
    "BatchNorm1d", "BatchNorm2d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
    "InstanceNorm2d",
    "ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d", "ReflectionPad2d",
    "ReplicationPad1d", "ReplicationPad2d", "PixelShuffle", "PixelUnshuffle", "LocalResponseNorm",
    "CosineSimilarity", "PairwiseDistance", "Unfold", "Fold",
    "LocallyConnected1d", "LocallyConnected2d", "TiledConv2d",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss",
]
