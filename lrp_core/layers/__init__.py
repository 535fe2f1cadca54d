"""The layers of an lrp-core graph (argument names and weight layouts as in ``torch.nn``)."""

from .activations import (
                          ELU,
                          GELU,
                          Activation,
                          ActivationLayer,
                          Hardsigmoid,
                          Hardswish,
                          LeakyReLU,
                          Mish,
                          ReLU,
                          ReLU6,
                          Sigmoid,
                          SiLU,
                          Softmax,
                          Tanh,
                          as_activation,
)
from .base import Layer, LinearizableLayer, PassThroughLayer, Symbol
from .constants import AddConstant, ConcatConstant
from .linear import Conv, ConvLayer, ConvTranspose, Dense, WeightedLayer
from .merging import Add
from .normalization import Affine, BatchNorm, L2Normalize, LayerNorm, NormalizationLayer
from .pooling import (
                          AdaptiveAvgPool,
                          AdaptiveMaxPool,
                          AvgPool,
                          GlobalAvgPool,
                          GlobalMaxPool,
                          MaxPool,
                          PoolingLayer,
)
from .products import MatMul, Mul, ProductLayer
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
from .routing import Permute, Slice, Stack

__all__ = [
    "Layer", "LinearizableLayer", "PassThroughLayer", "Symbol", "WeightedLayer",
    "ConvLayer", "PoolingLayer", "DropoutLayer", "ReshapingLayer", "NormalizationLayer",
    "ActivationLayer",
    "Dense", "Conv", "ConvTranspose",
    "MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool",
    "Flatten", "Reshape", "ZeroPad", "Dropout", "Identity", "Concat", "Add", "Affine",
    "BatchNorm", "LayerNorm", "L2Normalize",
    "ReLU", "LeakyReLU", "ReLU6", "GELU", "SiLU", "ELU", "Tanh", "Sigmoid", "Softmax",
    "Activation", "as_activation",
    "Permute", "Slice", "Stack", "Hardswish", "Hardsigmoid", "Mish",
    "ProductLayer", "Mul", "MatMul", "AddConstant", "ConcatConstant",
]
