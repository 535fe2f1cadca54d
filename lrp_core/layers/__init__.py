"""The layers of an lrp-core graph (argument names and weight layouts as in ``torch.nn``)."""

from .activations import (
                          ELU,
                          GELU,
                          Activation,
                          ActivationLayer,
                          LeakyReLU,
                          ReLU,
                          ReLU6,
                          Sigmoid,
                          SiLU,
                          Softmax,
                          Tanh,
                          as_activation,
)
from .base import Layer, LinearizableLayer, PassThroughLayer, Symbol
from .linear import Conv, ConvLayer, ConvTranspose, Dense, WeightedLayer
from .merging import Add
from .normalization import Affine, BatchNorm, LayerNorm, NormalizationLayer
from .pooling import (
                          AdaptiveAvgPool,
                          AdaptiveMaxPool,
                          AvgPool,
                          GlobalAvgPool,
                          GlobalMaxPool,
                          MaxPool,
                          PoolingLayer,
)
from .reshaping import (
                          Concat,
                          Dropout,
                          DropoutLayer,
                          Flatten,
                          Identity,
                          Reshape,
                          ReshapingLayer,
                          ZeroPad,
)

__all__ = [
    "Layer", "LinearizableLayer", "PassThroughLayer", "Symbol", "WeightedLayer",
    "ConvLayer", "PoolingLayer", "DropoutLayer", "ReshapingLayer", "NormalizationLayer",
    "ActivationLayer",
    "Dense", "Conv", "ConvTranspose",
    "MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool",
    "Flatten", "Reshape", "ZeroPad", "Dropout", "Identity", "Concat", "Add", "Affine",
    "BatchNorm", "LayerNorm",
    "ReLU", "LeakyReLU", "ReLU6", "GELU", "SiLU", "ELU", "Tanh", "Sigmoid", "Softmax",
    "Activation", "as_activation",
]
