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
from .concepts import FeatureSelector, IndexedFeatures, TopNFeatures
from .crp import CRP
from .dataset import explain_dataset
from .errors import (
    InputShapeNeededError,
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
                         AddConstant,
                         Affine,
                         AvgPool,
                         BatchNorm,
                         Concat,
                         ConcatConstant,
                         Conv,
                         ConvLayer,
                         ConvTranspose,
                         Dense,
                         Dropout,
                         DropoutLayer,
                         Flatten,
                         GlobalAvgPool,
                         GlobalMaxPool,
                         Hardsigmoid,
                         Hardswish,
                         Identity,
                         L2Normalize,
                         Layer,
                         LayerNorm,
                         LeakyReLU,
                         LinearizableLayer,
                         MatMul,
                         MaxPool,
                         Mish,
                         Mul,
                         NormalizationLayer,
                         PassThroughLayer,
                         Permute,
                         PoolingLayer,
                         ProductLayer,
                         ReLU,
                         ReLU6,
                         Reshape,
                         ReshapingLayer,
                         Sigmoid,
                         SiLU,
                         Slice,
                         Softmax,
                         Stack,
                         Tanh,
                         WeightedLayer,
                         ZeroPad,
)
from .presets import (
                         CPLRP,
                         PRESETS,
                         AttnLRP,
                         EpsilonAlpha2Beta1,
                         EpsilonAlpha2Beta1Flat,
                         EpsilonGammaBox,
                         EpsilonPlus,
                         EpsilonPlusFlat,
                         preset,
)
from .product_rules import CPRule, ProductRule, SoftmaxRule, UniformRule
from .readers import from_onnx, from_torch
from .rules import (
                         AlphaBetaRule,
                         EpsilonRule,
                         FlatRule,
                         GammaRule,
                         GeneralizedGammaRule,
                         L2NormalizeRule,
                         LayerNormRule,
                         LRPRule,
                         PassRule,
                         WSquareRule,
                         ZBoxRule,
                         ZeroRule,
                         ZPlusRule,
)
from .zarr_store import to_zarr

__version__ = "0.1.0"

__all__ = [
    # analysis
    "LRP", "analyze", "propagate", "Explanation",
    # datasets (Dask, Zarr: imported when called)
    "explain_dataset", "to_zarr",
    # concept relevance propagation
    "CRP", "FeatureSelector", "IndexedFeatures", "TopNFeatures",
    # rules
    "LRPRule", "ZeroRule", "EpsilonRule", "GammaRule", "WSquareRule", "FlatRule", "PassRule",
    "ZBoxRule", "ZPlusRule", "AlphaBetaRule", "GeneralizedGammaRule", "LayerNormRule",
    "L2NormalizeRule",
    "UniformRule", "CPRule", "ProductRule", "SoftmaxRule",
    "relu", "keep_positive", "keep_negative", "stabilize_denom",
    # composites
    "Composite", "CompositeMap", "GlobalMap", "LayerMap", "RangeMap", "FirstLayerMap",
    "LastLayerMap", "GlobalTypeMap", "RangeTypeMap", "FirstLayerTypeMap", "FirstOfTypeMap",
    "LastLayerTypeMap", "FirstNTypeMap", "PRESETS", "preset", "EpsilonGammaBox", "EpsilonPlus",
    "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat", "AttnLRP", "CPLRP",
    # model
    "Graph", "GraphBuilder", "Chain", "Input", "Node", "from_torch", "from_onnx",
    "canonize", "strip_softmax", "check_model",
    # layers
    "Layer", "LinearizableLayer", "PassThroughLayer", "WeightedLayer",
    "ConvLayer", "PoolingLayer", "DropoutLayer", "ReshapingLayer", "NormalizationLayer",
    "ActivationLayer", "Dense", "Conv", "ConvTranspose", "MaxPool", "AvgPool", "AdaptiveAvgPool",
    "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool", "Flatten", "Reshape", "Dropout",
    "Identity", "Concat", "Add", "Affine", "ZeroPad", "BatchNorm", "LayerNorm", "ReLU", "LeakyReLU",
    "L2Normalize",
    "ReLU6", "GELU",
    "SiLU", "ELU", "Tanh", "Sigmoid", "Softmax", "Activation",
    "Permute", "Slice", "Stack", "Hardswish", "Hardsigmoid", "Mish",
    "ProductLayer", "Mul", "MatMul", "AddConstant", "ConcatConstant",
    # errors
    "LRPError", "LRPCompatibilityError", "ModelCheckError", "UnsupportedOperatorError",
    "InputShapeNeededError", "NonFiniteError",
    # heatmaps
    "heatmap", "save_image",
]
