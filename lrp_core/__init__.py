"""lrp-core: Layer-wise Relevance Propagation on any array-API namespace.

    import lrp_core as lrp
    analyzer = lrp.LRP(model, lrp.EpsilonPlusFlat())
    expl = analyzer(x)          # expl.val: relevance shaped like x, in x's namespace
"""

from .analyzer import LRP, analyze, propagate
from .arrays import keep_negative, keep_positive, relu, stabilize_denom
from .canonize import canonize, check_model, strip_softmax
from .composites import (
                         Composite,
                         CompositeMap,
                         FirstLayerMap,
                         FirstLayerTypeMap,
                         FirstNTypeMap,
                         FirstOfTypeMap,
                         GlobalMap,
                         GlobalTypeMap,
                         LastLayerMap,
                         LastLayerTypeMap,
                         LayerMap,
                         RangeMap,
                         RangeTypeMap,
)
from .errors import (
    LRPCompatibilityError,
    LRPError,
    ModelCheckError,
    NonFiniteError,
    UnsupportedOperatorError,
)
from .explanation import Explanation
from .graph import Chain, Graph, GraphBuilder, Input, Node
from .heatmaps import heatmap
from .images import save_image
from .layers import (
                         ELU,
                         GELU,
                         Activation,
                         ActivationLayer,
                         AdaptiveAvgPool,
                         AdaptiveMaxPool,
                         Add,
                         Affine,
                         AvgPool,
                         BatchNorm,
                         Concat,
                         Conv,
                         ConvLayer,
                         ConvTranspose,
                         Dense,
                         Dropout,
                         DropoutLayer,
                         Flatten,
                         GlobalAvgPool,
                         GlobalMaxPool,
                         Identity,
                         Layer,
                         LayerNorm,
                         LeakyReLU,
                         LinearizableLayer,
                         MaxPool,
                         NormalizationLayer,
                         PassThroughLayer,
                         PoolingLayer,
                         ReLU,
                         ReLU6,
                         Reshape,
                         ReshapingLayer,
                         Sigmoid,
                         SiLU,
                         Softmax,
                         Tanh,
                         WeightedLayer,
                         ZeroPad,
)
from .presets import (
                         PRESETS,
                         EpsilonAlpha2Beta1,
                         EpsilonAlpha2Beta1Flat,
                         EpsilonGammaBox,
                         EpsilonPlus,
                         EpsilonPlusFlat,
                         preset,
)
from .readers import from_onnx, from_torch
from .rules import (
                         AlphaBetaRule,
                         EpsilonRule,
                         FlatRule,
                         GammaRule,
                         GeneralizedGammaRule,
                         LayerNormRule,
                         LRPRule,
                         PassRule,
                         WSquareRule,
                         ZBoxRule,
                         ZeroRule,
                         ZPlusRule,
)

__version__ = "0.1.0"

__all__ = [
    # analysis
    "LRP", "analyze", "propagate", "Explanation",
    # rules
    "LRPRule", "ZeroRule", "EpsilonRule", "GammaRule", "WSquareRule", "FlatRule", "PassRule",
    "ZBoxRule", "ZPlusRule", "AlphaBetaRule", "GeneralizedGammaRule", "LayerNormRule",
    "relu", "keep_positive", "keep_negative", "stabilize_denom",
    # composites
    "Composite", "CompositeMap", "GlobalMap", "LayerMap", "RangeMap", "FirstLayerMap",
    "LastLayerMap", "GlobalTypeMap", "RangeTypeMap", "FirstLayerTypeMap", "FirstOfTypeMap",
    "LastLayerTypeMap", "FirstNTypeMap", "PRESETS", "preset", "EpsilonGammaBox", "EpsilonPlus",
    "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat",
    # model
    "Graph", "GraphBuilder", "Chain", "Input", "Node", "from_torch", "from_onnx",
    "canonize", "strip_softmax", "check_model",
    # layers
    "Layer", "LinearizableLayer", "PassThroughLayer", "WeightedLayer",
    "ConvLayer", "PoolingLayer", "DropoutLayer", "ReshapingLayer", "NormalizationLayer",
    "ActivationLayer", "Dense", "Conv", "ConvTranspose", "MaxPool", "AvgPool", "AdaptiveAvgPool",
    "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool", "Flatten", "Reshape", "Dropout",
    "Identity", "Concat", "Add", "Affine", "ZeroPad", "BatchNorm", "LayerNorm", "ReLU", "LeakyReLU",
    "ReLU6", "GELU",
    "SiLU", "ELU", "Tanh", "Sigmoid", "Softmax", "Activation",
    # errors
    "LRPError", "LRPCompatibilityError", "ModelCheckError", "UnsupportedOperatorError",
    "NonFiniteError",
    # heatmaps
    "heatmap", "save_image",
]
