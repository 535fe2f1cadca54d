"""The preset composites, and the one registry of their names.

Every preset maps ``ConvLayer`` to its conv rule, ``Dense`` to ``EpsilonRule(epsilon)``,
``LayerNorm`` to ``LayerNormRule``, ``L2Normalize`` to ``L2NormalizeRule`` (both hold their
normaliser constant), and dropout, normalisation, reshaping and identity layers to
``PassRule``; pooling and activation layers are left to ``ZeroRule``. Products of two
activations get ``ProductRule``: ``CPRule(epsilon)`` where one factor is a gate (out of a
sigmoid, hard sigmoid or softmax: squeeze-excitation, attention weights: the gate is a
weighting, the other factor carries the evidence), ``UniformRule(epsilon)`` elsewhere; a softmax
inside the network gets ``SoftmaxRule()``; a constant added inside (``AddConstant``) gets
``EpsilonRule(epsilon)``. :func:`AttnLRP` and :func:`CPLRP` are the transformer presets.
"The first conv" is the first layer of the convolution group in topological order (Zennit's
meaning), so an input normalisation in the graph does not take its place.

:data:`PRESETS` maps each preset's name to its factory; the command line, the tests and the
conformance suite read it, and :func:`preset` builds one by name.
"""

from __future__ import annotations

import inspect

from .composites import Composite, FirstOfTypeMap, GlobalMap, GlobalTypeMap
from .layers import (
    Add,
    AddConstant,
    ConvLayer,
    Dense,
    DropoutLayer,
    Identity,
    L2Normalize,
    LayerNorm,
    NormalizationLayer,
    ProductLayer,
    ReshapingLayer,
    Softmax,
)
from .product_rules import CPRule, ProductRule, SoftmaxRule, UniformRule
from .rules import (
    AlphaBetaRule,
    EpsilonRule,
    FlatRule,
    GammaRule,
    L2NormalizeRule,
    LayerNormRule,
    PassRule,
    ZBoxRule,
    ZeroRule,
    ZPlusRule,
)

__all__ = ["EpsilonGammaBox", "EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat",
           "EpsilonAlpha2Beta1Flat", "Zero", "AttnLRP", "CPLRP", "PRESETS", "preset"]


def _gated_products(epsilon) -> ProductRule:
    """CP-LRP on a product with a gate factor, AttnLRP's uniform rule on any other product."""
    return ProductRule(CPRule(epsilon), UniformRule(epsilon))


def _preset(conv_rule, epsilon, first_conv_rule=None, *, products=None, extra=None) -> Composite:
    primitives = [GlobalTypeMap({
        ConvLayer: conv_rule,
        Dense: EpsilonRule(epsilon),
        LayerNorm: LayerNormRule(),
        L2Normalize: L2NormalizeRule(),
        NormalizationLayer: PassRule(),
        DropoutLayer: PassRule(),
        ReshapingLayer: PassRule(),
        Identity: PassRule(),
        ProductLayer: _gated_products(epsilon) if products is None else products,
        Softmax: SoftmaxRule(),
        AddConstant: EpsilonRule(epsilon),
        **(extra or {}),
    })]
    if first_conv_rule is not None:
        primitives.append(FirstOfTypeMap({ConvLayer: first_conv_rule}))
    return Composite(*primitives)


def EpsilonGammaBox(low, high, *, epsilon=1e-6, gamma=0.25) -> Composite:
    """Conv → ``GammaRule(gamma)``, first conv → ``ZBoxRule(low, high)``, Dense → ε-rule.

    ``low`` and ``high`` bound the model's input (scalars, or arrays of one input's shape); where
    the graph normalises its input before the first conv (an ``Affine``), the bounds are mapped
    through it.
    """
    return _preset(GammaRule(gamma), epsilon, ZBoxRule(low, high))


def EpsilonPlus(*, epsilon=1e-6) -> Composite:
    """Conv → ``ZPlusRule()``, Dense → ``EpsilonRule(epsilon)``."""
    return _preset(ZPlusRule(), epsilon)


def EpsilonAlpha2Beta1(*, epsilon=1e-6) -> Composite:
    """Conv → ``AlphaBetaRule(2, 1)``, Dense → ``EpsilonRule(epsilon)``."""
    return _preset(AlphaBetaRule(2.0, 1.0), epsilon)


def EpsilonPlusFlat(*, epsilon=1e-6) -> Composite:
    """:func:`EpsilonPlus` with the first conv → ``FlatRule()``."""
    return _preset(ZPlusRule(), epsilon, FlatRule())


def EpsilonAlpha2Beta1Flat(*, epsilon=1e-6) -> Composite:
    """:func:`EpsilonAlpha2Beta1` with the first conv → ``FlatRule()``."""
    return _preset(AlphaBetaRule(2.0, 1.0), epsilon, FlatRule())


def AttnLRP(*, epsilon=1e-6) -> Composite:
    """AttnLRP (Achtibat et al., ICML 2024): ``EpsilonRule(epsilon)`` on Dense, Conv and the
    additions (``Add``, ``AddConstant``), ``LayerNormRule`` on LayerNorm (the standard deviation
    held constant), the identity on activations and constant scalings, ``UniformRule(epsilon)``
    on every product of two activations and ``SoftmaxRule()`` on a softmax inside the network."""
    return _preset(EpsilonRule(epsilon), epsilon, products=UniformRule(epsilon),
                   extra={Add: EpsilonRule(epsilon)})


def CPLRP(*, epsilon=1e-6) -> Composite:
    """CP-LRP (Ali et al., ICML 2022): as :func:`AttnLRP`, but a product with a gate factor (the
    attention weights out of a softmax, a sigmoid gate) gets ``CPRule(epsilon)``: the gate held
    constant, all relevance to the other factor (so none reaches the queries and keys); a product
    without a gate factor keeps ``UniformRule(epsilon)``."""
    return _preset(EpsilonRule(epsilon), epsilon, products=_gated_products(epsilon),
                   extra={Add: EpsilonRule(epsilon)})


def Zero() -> Composite:
    """``ZeroRule`` on every layer (LRP-0)."""
    return Composite(GlobalMap(ZeroRule()))


#: preset name -> factory. ``epsilon_gamma_box`` takes ``low`` and ``high`` (the input bounds);
#: the others take none. Names are snake case; the command line accepts them in kebab case too.
PRESETS = {
    "zero": Zero,
    "epsilon_plus": EpsilonPlus,
    "epsilon_plus_flat": EpsilonPlusFlat,
    "epsilon_alpha2_beta1": EpsilonAlpha2Beta1,
    "epsilon_alpha2_beta1_flat": EpsilonAlpha2Beta1Flat,
    "epsilon_gamma_box": EpsilonGammaBox,
    "attn_lrp": AttnLRP,
    "cp_lrp": CPLRP,
}

#: the presets whose factory takes the input bounds ``low`` and ``high``
NEEDS_BOUNDS = frozenset({"epsilon_gamma_box"})


def preset(name: str, *, low=None, high=None, **options) -> Composite:
    """The preset ``name`` (snake or kebab case), built with ``options`` (``epsilon=``, ...);
    ``low`` and ``high`` are required by, and only given to, the presets in
    :data:`NEEDS_BOUNDS`."""
    if not isinstance(name, str):
        raise TypeError(f"the preset name must be a string, one of: {', '.join(PRESETS)}; "
                        f"got {name!r}")
    key = name.replace("-", "_")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    accepted = [p.name for p in inspect.signature(PRESETS[key]).parameters.values()
                if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"the preset {name!r} takes no option {', '.join(map(repr, unknown))}; "
                        f"its options: {', '.join(accepted) or 'none'}")
    if key in NEEDS_BOUNDS:
        if low is None or high is None:
            raise ValueError(f"the preset {name!r} needs the input bounds: "
                             f"preset({name!r}, low=..., high=...)")
        return PRESETS[key](low, high, **options)
    return PRESETS[key](**options)
