"""LRP rules: small value objects whose methods are hooks (as in RelevancePropagation.jl).

The generic rule, used by every rule that does not override :meth:`LRPRule.propagate`, maps the
relevance ``R`` of a layer's output to its input ``a``::

    ã = modify_input(a)
    L̃ = modify_layer(layer)         # weight and bias through the hooks, activation removed
    z = L̃(ã)                        # the pre-activation
    s = R / modify_denominator(z)
    c = L̃'s linear map transposed, applied to s   (the vector-Jacobian product)
    R_in = ã ⊙ c

A custom rule overrides one or two hooks::

    class MyGammaRule(lrp.LRPRule):
        def modify_parameters(self, param):
            return param + 0.25 * lrp.relu(param)

Hooks must be pure (never mutate the layer) and must not promote the dtype; a parameter hook
that does is cast back to the parameter's dtype.

References: G. Montavon et al., *Layer-Wise Relevance Propagation: An Overview* (2019);
S. Bach et al., *On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise
Relevance Propagation* (2015); A. Hedström, RelevancePropagation.jl (Julia-XAI).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import array_api_compat
import numpy as np

from .arrays import (
    keep_negative,
    keep_positive,
    namespace_of,
    relu,
    stabilize_denom,
    to_namespace,
)
from .errors import LRPCompatibilityError
from .layers import Affine, ConvLayer, L2Normalize, Layer, LayerNorm, WeightedLayer

__all__ = [
    "LRPRule",
    "ZeroRule",
    "EpsilonRule",
    "GammaRule",
    "WSquareRule",
    "FlatRule",
    "PassRule",
    "ZBoxRule",
    "ZPlusRule",
    "AlphaBetaRule",
    "GeneralizedGammaRule",
    "LayerNormRule",
    "L2NormalizeRule",
    "StepHints",
    "SignSplit",
    "sign_split",
]

DEFAULT_STABILIZER = 1e-9


@dataclass(frozen=True)
class StepHints:
    """What the analyzer knows about one step that a rule may use to save work.

    ``forward``: ``(z, pullback)`` of the unmodified layer from the forward pass, when the
    analyzer could keep it (the rule changes neither the input nor the layer: see
    :meth:`LRPRule.reuses_forward`); ``None`` otherwise. ``inputs_nonnegative``: every input is
    known to be >= 0 (it comes out of a ReLU, or a pooling of one), so sign-split rules may skip
    their ``a⁻`` terms.
    """

    forward: tuple | None = None
    inputs_nonnegative: bool = False


NO_HINTS = StepHints()


@dataclass(frozen=True)
class SignSplit:
    """The parts of a weighted layer that the sign-split rules (z⁺, αβ, generalised γ, zᴮ) use,
    built once (RelevancePropagation.jl's named-tuple convention). With ``f⁺``, ``f⁻`` the two
    parameter maps (``keep_positive`` and ``keep_negative`` unless a rule says otherwise):

    ``positive``: ``f⁺(W), f⁺(b)``; ``negative``: ``f⁻(W), f⁻(b)``; ``positive_weight`` and
    ``negative_weight``: the same weights without bias; ``plain``: the layer itself. All have no
    activation; the biased and unbiased parts share their weight array.
    """

    positive: Layer
    negative: Layer
    positive_weight: Layer
    negative_weight: Layer
    plain: Layer


def sign_split(layer, positive=keep_positive, negative=keep_negative) -> SignSplit:
    """The :class:`SignSplit` of ``layer`` under the parameter maps ``positive`` and
    ``negative`` (each applied once to the weight and once to the bias; dtypes kept)."""
    def part(fn, bias):
        weight = _same_dtype(fn(layer.weight), layer.weight)
        biased = None if bias is None else _same_dtype(fn(bias), bias)
        return (layer.replace(weight=weight, bias=biased, activation=None),
                layer.replace(weight=weight, bias=None, activation=None))

    pos, pos_weight = part(positive, layer.bias)
    neg, neg_weight = part(negative, layer.bias)
    return SignSplit(pos, neg, pos_weight, neg_weight, layer.replace(activation=None))


class LRPRule:
    """Base class of the rules; the defaults make it the LRP-0 rule.

    Hooks: :meth:`modify_input`, :meth:`modify_parameters`, :meth:`modify_weight`,
    :meth:`modify_bias`, :meth:`modify_denominator`, :meth:`is_compatible`,
    :meth:`modify_layer`; a rule outside the generic scheme overrides :meth:`propagate`.
    """

    # -- hooks ---------------------------------------------------------------------------------
    def modify_input(self, x):
        """``ã``: the input the modified layer sees. Default: ``x``."""
        return x

    def modify_parameters(self, param):
        """Applied to weight and bias unless :meth:`modify_weight`/:meth:`modify_bias` are
        overridden. Default: ``param``."""
        return param

    def modify_weight(self, weight):
        """Default: :meth:`modify_parameters`."""
        return self.modify_parameters(weight)

    def modify_bias(self, bias):
        """Default: :meth:`modify_parameters`."""
        return self.modify_parameters(bias)

    def modify_denominator(self, d):
        """Default: ``stabilize_denom(d, 1e-9)``."""
        return stabilize_denom(d, DEFAULT_STABILIZER)

    def bind(self, graph, index: int) -> LRPRule:
        """The rule as it applies to node ``index`` of ``graph`` (called once, when the analyzer
        is built). Default: the rule itself; :class:`ZBoxRule` maps its input-space bounds
        through a leading input normalisation here."""
        return self

    def is_compatible(self, layer) -> bool:
        """Whether the rule applies to ``layer``. Default: the layer belongs to the weighted
        group (Dense, Conv, ConvTranspose, Affine), whose ``weight`` and ``bias`` are its
        effective linear map; an unfused BatchNorm (γ, β are not its map) or a LayerNorm is
        refused (``canonize`` puts an ``Affine`` with the effective map in place of a BatchNorm
        it cannot fuse)."""
        return isinstance(layer, WeightedLayer)

    def modify_layer(self, layer):
        """The modified layer ``L̃``, built once per namespace/device/dtype.

        Default: weight and bias through :meth:`modify_weight` and :meth:`modify_bias`, activation
        removed; ``None`` ("use the layer as it is") when the rule overrides no parameter hook,
        which saves the memory of a copy. Overriding it bypasses the parameter hooks.
        """
        if not self._modifies_parameters() or not isinstance(layer, WeightedLayer):
            return None
        bias = None if layer.bias is None else _same_dtype(self.modify_bias(layer.bias), layer.bias)
        return layer.replace(weight=_same_dtype(self.modify_weight(layer.weight), layer.weight),
                             bias=bias, activation=None)

    # -- the step ------------------------------------------------------------------------------
    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        """Relevance of each input (a tuple) given the output relevance: the generic rule.

        ``modified_layer`` is what :meth:`modify_layer` built (``None``: the layer as it is);
        ``hints`` (:class:`StepHints`) is what the analyzer knows that may save work.
        """
        modified_inputs = tuple(self.modify_input(a) for a in inputs)
        target = layer if modified_layer is None else modified_layer
        if hints.forward is not None:
            z, pullback = hints.forward
        else:
            z, pullback = target.linearize(*modified_inputs)
        s = relevance / self.modify_denominator(z)
        if getattr(layer, "reads_masked_inputs", False):  # a masked -inf score: relevance 0
            modified_inputs = tuple(_masked_as_zero(a) for a in modified_inputs)
        contributions = pullback(s)
        del s  # the quotient is freed before the products: one full-size array less at the peak
        return tuple(a * c for a, c in zip(modified_inputs, contributions))

    # -- introspection -------------------------------------------------------------------------
    def _modifies_parameters(self) -> bool:
        cls = type(self)
        return any(getattr(cls, hook) is not getattr(LRPRule, hook)
                   for hook in ("modify_parameters", "modify_weight", "modify_bias"))

    def reuses_forward(self) -> bool:
        """Whether the forward pass's ``(z, pullback)`` equals this rule's: the generic step with
        unmodified input and layer (``ZeroRule``, ``EpsilonRule``)."""
        cls = type(self)
        return (cls.propagate is LRPRule.propagate and cls.modify_input is LRPRule.modify_input
                and cls.modify_layer is LRPRule.modify_layer and not self._modifies_parameters())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _masked_as_zero(a):
    """``a`` with its non-finite entries (``-inf`` at masked positions) set to 0."""
    xp = namespace_of(a)
    return xp.where(xp.isfinite(a), a, xp.zeros_like(a))


def _same_dtype(new, old):
    if new is None or old is None or new.dtype == old.dtype:
        return new
    return namespace_of(new).astype(new, old.dtype)


def _accepts_any_layer(layer) -> bool:
    return True


def _check_real(rule: str, name: str, value, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite real number (``> 0`` if ``positive``, else
    ``>= 0``); otherwise a ``TypeError``/``ValueError`` naming the rule and the argument."""
    need = "a finite positive float" if positive else "a finite float >= 0"
    if isinstance(value, (bool, str, bytes)) or not (isinstance(value, numbers.Real)
                                                     or hasattr(type(value), "__float__")):
        raise TypeError(f"{rule}: {name} must be {need}, got {value!r} "
                        f"({type(value).__name__})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{rule}: {name} must be {need}, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"{rule}: {name} must be {need}, got {value!r}")
    return number


def _check_bound(rule: str, name: str, value):
    """A ZBox bound: a finite real scalar, or an array (NumPy arrays are checked elementwise,
    arrays of other namespaces are taken as they are)."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{rule}: {name} must be a finite float or an array, got {value!r}")
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise ValueError(f"{rule}: {name} must be finite, got {value!r}")
    elif isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.number):
            raise TypeError(f"{rule}: {name} must be a numeric array, got dtype {value.dtype}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{rule}: {name} must be finite; the array holds NaN or infinity")
    elif not hasattr(value, "shape"):
        raise TypeError(f"{rule}: {name} must be a finite float or an array, "
                        f"got {value!r} ({type(value).__name__})")


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class ZeroRule(LRPRule):
    r"""LRP-0: ``R_j = Σ_i a_j W_ij / (Σ_l a_l W_il + b_i) · R_i``.

    Applies to every layer (pass-through layers route relevance unchanged).
    Reference: S. Bach et al., PLOS ONE 10(7), 2015.
    """

    def is_compatible(self, layer):
        return _accepts_any_layer(layer)


@dataclass(frozen=True)
class EpsilonRule(LRPRule):
    r"""LRP-ε: ``R_j = Σ_i a_j W_ij / (ε·sign(z_i) + z_i) · R_i`` with ``z_i = Σ_l a_l W_il + b_i``.

    Applies to every layer. Reference: S. Bach et al., PLOS ONE 10(7), 2015.
    """

    epsilon: float = 1e-6

    def __post_init__(self):
        _check_real("EpsilonRule", "epsilon", self.epsilon, positive=True)

    def modify_denominator(self, d):
        return stabilize_denom(d, self.epsilon)

    def is_compatible(self, layer):
        return _accepts_any_layer(layer)


@dataclass(frozen=True)
class GammaRule(LRPRule):
    r"""LRP-γ: ``R_j = Σ_i a_j (W_ij + γW_ij⁺) / Σ_l a_l (W_il + γW_il⁺) + (b_i + γb_i⁺) · R_i``.

    Reference: G. Montavon et al., *Layer-Wise Relevance Propagation: An Overview*, 2019.
    """

    gamma: float = 0.25

    def __post_init__(self):
        _check_real("GammaRule", "gamma", self.gamma)

    def modify_parameters(self, param):
        return param + self.gamma * relu(param)


@dataclass(frozen=True, repr=False)
class WSquareRule(LRPRule):
    r"""LRP-w²: ``R_j = Σ_i W_ij² / Σ_l W_il² · R_i`` (input → ones, weight → W², bias → 0).

    Reference: G. Montavon et al., *Explaining NonLinear Classification Decisions with Deep
    Taylor Decomposition*, Pattern Recognition 65, 2017.
    """

    def modify_input(self, x):
        return namespace_of(x).ones_like(x)

    def modify_weight(self, weight):
        return weight * weight

    def modify_bias(self, bias):
        return namespace_of(bias).zeros_like(bias)


@dataclass(frozen=True, repr=False)
class FlatRule(LRPRule):
    r"""LRP-flat: ``R_j = Σ_i 1 / Σ_l 1 · R_i`` (input → ones, weight → ones, bias → 0).

    On a padded convolution only in-bounds taps count in ``Σ_l 1``. Reference: S. Lapuschkin
    et al., *Unmasking Clever Hans Predictors*, Nature Communications 10, 2019.
    """

    def modify_input(self, x):
        return namespace_of(x).ones_like(x)

    def modify_weight(self, weight):
        return namespace_of(weight).ones_like(weight)

    def modify_bias(self, bias):
        return namespace_of(bias).zeros_like(bias)


@dataclass(frozen=True, repr=False)
class PassRule(LRPRule):
    r"""Pass-rule: ``R_in = R`` (reshaped to the input's shape; their sizes must agree).

    Applies to any layer with one input. Reference: RelevancePropagation.jl.
    """

    def is_compatible(self, layer):
        return layer.n_inputs == 1

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        (a,) = inputs
        if tuple(a.shape) != tuple(relevance.shape):
            if _size(a.shape) != _size(relevance.shape):
                raise ValueError(f"PassRule on {layer.describe()}: the input shape "
                                 f"{tuple(a.shape)} and the output shape "
                                 f"{tuple(relevance.shape)} differ in size")
            relevance = namespace_of(relevance).reshape(relevance, a.shape)
        return (relevance,)


def _size(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


@dataclass(frozen=True, eq=False)
class ZBoxRule(LRPRule):
    r"""LRP-zᴮ for inputs bounded by ``low <= x <= high`` (scalars or arrays of the input's
    shape, with or without the batch axis), on the pre-activation:

    ``R_j = Σ_i (a_j W_ij − l_j W_ij⁺ − h_j W_ij⁻) / Σ_l (a_l W_il − l_l W_il⁺ − h_l W_il⁻) · R_i``

    i.e. ``s = R / stab(z − z_l − z_h)`` with ``z_l = W⁺l + b⁺``, ``z_h = W⁻h + b⁻``, and
    ``R_in = a⊙Wᵀs − l⊙W⁺ᵀs − h⊙W⁻ᵀs``. Reference: G. Montavon et al., *Explaining NonLinear
    Classification Decisions with Deep Taylor Decomposition*, Pattern Recognition 65, 2017.
    """

    low: object = 0.0
    high: object = 1.0

    def __post_init__(self):
        _check_bound("ZBoxRule", "low", self.low)
        _check_bound("ZBoxRule", "high", self.high)
        low, high = self.low, self.high
        if isinstance(low, numbers.Real) and isinstance(high, numbers.Real):
            if low > high:
                raise ValueError(f"ZBoxRule needs low <= high, got low={low!r}, high={high!r}")
        elif (isinstance(low, (np.ndarray, numbers.Real))
              and isinstance(high, (np.ndarray, numbers.Real))):
            try:
                ordered = bool(np.all(np.asarray(low) <= np.asarray(high)))
            except ValueError:  # shapes that do not broadcast: refused when the rule is used
                ordered = True
            if not ordered:
                raise ValueError("ZBoxRule needs low <= high elementwise; some elements of low "
                                 "are greater than high")

    def bind(self, graph, index):
        """Bounds are given in the space of the model's input. Where the layer reads the input
        through constant scale-and-shifts (``Affine`` layers: an input normalisation in the
        graph), they are mapped through them, ``[l, h] -> [min(ls+t, hs+t), max(ls+t, hs+t)]``.
        A layer deeper in the network takes the bounds as given, in its own input's space."""
        affines = []
        value = graph.nodes[index].inputs[0]
        while value != 0 and isinstance(graph.nodes[value - 1].layer, Affine):
            affines.append(graph.nodes[value - 1].layer)
            value = graph.nodes[value - 1].inputs[0]
        if value != 0 or not affines:
            return self
        layer = graph.nodes[index].layer
        low, high = self.low, self.high
        for affine in reversed(affines):
            low, high = _map_bounds(affine, low, high, layer, graph.label(index))
        return ZBoxRule(low, high)

    def modify_layer(self, layer):
        xp = namespace_of(layer.weight)
        device, dtype = array_api_compat.device(layer.weight), layer.weight.dtype

        def bound(value):
            if isinstance(value, (int, float)):
                return float(value)
            return to_namespace(value, xp, device, dtype)

        return _Bounded(sign_split(layer), bound(self.low), bound(self.high))

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        (a,) = inputs
        split = modified_layer.split
        xp = namespace_of(a)
        low = _broadcast_bound(xp, modified_layer.low, a)
        high = _broadcast_bound(xp, modified_layer.high, a)
        z, back = split.plain.linearize(a)
        z_low, back_low = split.positive.linearize(low)
        z_high, back_high = split.negative.linearize(high)
        s = relevance / self.modify_denominator(z - z_low - z_high)
        return (a * back(s)[0] - low * back_low(s)[0] - high * back_high(s)[0],)

    def __repr__(self):
        return f"ZBoxRule(low={_short(self.low)}, high={_short(self.high)})"


def _map_bounds(affine, low, high, layer, where: str):
    """``[low, high]`` through ``x -> x ⊙ scale + shift`` (``affine``), as arrays in the
    affine's namespace shaped to broadcast against the layer's input."""
    xp = namespace_of(affine.weight)
    device, dtype = array_api_compat.device(affine.weight), affine.weight.dtype
    scale, shift = affine.weight, affine.bias
    if affine.axis is not None:
        if not isinstance(layer, ConvLayer):
            raise LRPCompatibilityError(
                f"ZBoxRule on {where}: its input is normalised channel-wise and the input's rank "
                "is not known, so the bounds cannot be mapped; give them in the normalised space, "
                "as arrays of one normalised input's shape, on a layer map (lrp.LayerMap(index, "
                "lrp.ZBoxRule(low, high))) with canonize=False, or remove the normalisation")
        channel_shape = (-1,) + (1,) * layer.spatial_dims
        scale = xp.reshape(scale, channel_shape)
        shift = None if shift is None else xp.reshape(shift, channel_shape)

    def through(bound):
        bound = (float(bound) if isinstance(bound, (int, float))
                 else to_namespace(bound, xp, device, dtype))
        mapped = bound * scale
        return mapped if shift is None else mapped + shift

    a, b = through(low), through(high)
    return xp.minimum(a, b), xp.maximum(a, b)


@dataclass(frozen=True)
class _Bounded:
    """ZBoxRule's modified layer: the sign split and the bounds in the layer's namespace."""

    split: SignSplit
    low: object
    high: object


def _short(value) -> str:
    return repr(value) if isinstance(value, (int, float)) else f"array{tuple(value.shape)}"


def _broadcast_bound(xp, bound, a):
    if isinstance(bound, float):
        return xp.full(a.shape, bound, dtype=a.dtype, device=array_api_compat.device(a))
    return xp.broadcast_to(bound, a.shape)


@dataclass(frozen=True, repr=False)
class ZPlusRule(LRPRule):
    r"""LRP-z⁺: ``z = W⁺a⁺ + W⁻a⁻ + b⁺`` and ``R_in = a⁺ ⊙ W⁺ᵀs + a⁻ ⊙ W⁻ᵀs``, ``s = R / stab(z)``.

    Where the input is known to be non-negative (after a ReLU) the ``a⁻`` terms are skipped.
    Reference: G. Montavon et al., *Explaining NonLinear Classification Decisions with Deep
    Taylor Decomposition*, Pattern Recognition 65, 2017.
    """

    def modify_layer(self, layer):
        return sign_split(layer)

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        (a,) = inputs
        split = modified_layer
        if hints.inputs_nonnegative:
            z, back = split.positive.linearize(a)
            return (a * back(relevance / self.modify_denominator(z))[0],)
        a_pos, a_neg = keep_positive(a), keep_negative(a)
        z_pos, back_pos = split.positive.linearize(a_pos)
        z_neg, back_neg = split.negative_weight.linearize(a_neg)
        s = relevance / self.modify_denominator(z_pos + z_neg)
        return (a_pos * back_pos(s)[0] + a_neg * back_neg(s)[0],)


@dataclass(frozen=True)
class AlphaBetaRule(LRPRule):
    r"""LRP-αβ: ``R_in = α·R⁺ − β·R⁻`` with α, β >= 0 and α − β = 1, where

    ``z⁺ = W⁺a⁺ + W⁻a⁻ + b⁺``, ``R⁺ = a⁺ ⊙ W⁺ᵀs⁺ + a⁻ ⊙ W⁻ᵀs⁺``, ``s⁺ = R / stab(z⁺)`` and
    ``z⁻ = W⁺a⁻ + W⁻a⁺ + b⁻``, ``R⁻ = a⁻ ⊙ W⁺ᵀs⁻ + a⁺ ⊙ W⁻ᵀs⁻``, ``s⁻ = R / stab(z⁻)``.

    Reference: S. Bach et al., PLOS ONE 10(7), 2015.
    """

    alpha: float = 2.0
    beta: float = 1.0

    def __post_init__(self):
        _check_real("AlphaBetaRule", "alpha", self.alpha)
        _check_real("AlphaBetaRule", "beta", self.beta)
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"AlphaBetaRule needs alpha >= 0 and beta >= 0, "
                             f"got alpha={self.alpha}, beta={self.beta}")
        if abs(self.alpha - self.beta - 1.0) > 1e-12:
            raise ValueError(f"AlphaBetaRule needs alpha - beta = 1 (relevance conservation), "
                             f"got alpha={self.alpha}, beta={self.beta}")

    def modify_layer(self, layer):
        return sign_split(layer)

    def _part(self, relevance, a_pos, a_neg, with_bias, other, nonnegative):
        """``(a⁺ ⊙ with_biasᵀs + a⁻ ⊙ otherᵀs)`` for ``z = with_bias(a⁺) + other(a⁻)``."""
        z, back = with_bias.linearize(a_pos)
        if nonnegative:
            s = relevance / self.modify_denominator(z)
            return a_pos * back(s)[0]
        z_other, back_other = other.linearize(a_neg)
        s = relevance / self.modify_denominator(z + z_other)
        return a_pos * back(s)[0] + a_neg * back_other(s)[0]

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        (a,) = inputs
        m, nonnegative = modified_layer, hints.inputs_nonnegative
        a_pos, a_neg = (a, None) if nonnegative else (keep_positive(a), keep_negative(a))
        # z⁺ = W⁺a⁺ + b⁺ + W⁻a⁻
        result = self._part(relevance, a_pos, a_neg, m.positive, m.negative_weight, nonnegative)
        if self.alpha != 1.0:
            result = self.alpha * result
        if self.beta != 0.0:
            # z⁻ = W⁻a⁺ + b⁻ + W⁺a⁻
            negative = self._part(relevance, a_pos, a_neg, m.negative, m.positive_weight,
                                  nonnegative)
            result = result - self.beta * negative
        return (result,)


@dataclass(frozen=True)
class GeneralizedGammaRule(LRPRule):
    r"""Generalised LRP-γ, for layers whose activation keeps the sign (e.g. leaky ReLU).

    With ``W_γ⁺ = W + γW⁺`` and ``W_γ⁻ = W + γW⁻``, for outputs with ``z > 0``:
    ``zˡ = W_γ⁺a⁺ + W_γ⁻a⁻ + (b + γb⁺)``, ``sˡ = R·[z > 0] / stab(zˡ)``; for ``z < 0``:
    ``zʳ = W_γ⁻a⁺ + W_γ⁺a⁻ + (b + γb⁻)``, ``sʳ = R·[z < 0] / stab(zʳ)``; and
    ``R_in = a⁺ ⊙ (W_γ⁺ᵀsˡ + W_γ⁻ᵀsʳ) + a⁻ ⊙ (W_γ⁻ᵀsˡ + W_γ⁺ᵀsʳ)``, ``z`` the pre-activation.

    Reference: L. Andéol et al., *Learning Domain Invariant Representations by Joint
    Wasserstein Distance Minimization*, 2021 (equations as in RelevancePropagation.jl).
    """

    gamma: float = 0.25

    def __post_init__(self):
        _check_real("GeneralizedGammaRule", "gamma", self.gamma)

    def modify_layer(self, layer):
        g = self.gamma
        # positive: W_γ⁺ = W + γW⁺ (bias b + γb⁺); negative: W_γ⁻ = W + γW⁻ (bias b + γb⁻)
        return sign_split(layer, lambda p: p + g * keep_positive(p),
                          lambda p: p + g * keep_negative(p))

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        (a,) = inputs
        m = modified_layer
        xp = namespace_of(a)
        zero = xp.zeros_like(relevance)
        z = m.plain.preactivation(a)
        r_left = xp.where(z > 0, relevance, zero)
        r_right = xp.where(z < 0, relevance, zero)
        if hints.inputs_nonnegative:
            z_l, back_l = m.positive.linearize(a)
            z_r, back_r = m.negative.linearize(a)
            s_l = r_left / self.modify_denominator(z_l)
            s_r = r_right / self.modify_denominator(z_r)
            return (a * (back_l(s_l)[0] + back_r(s_r)[0]),)
        a_pos, a_neg = keep_positive(a), keep_negative(a)
        # W_γ⁺ applied to a⁺ (with bias b + γb⁺) and to a⁻; W_γ⁻ applied to a⁻ and to a⁺
        # (bias b + γb⁻)
        zl_pos, back_gp = m.positive.linearize(a_pos)
        zl_neg, back_gn = m.negative_weight.linearize(a_neg)
        zr_pos, _ = m.negative.linearize(a_pos)
        zr_neg = m.positive_weight.preactivation(a_neg)
        s_l = r_left / self.modify_denominator(zl_pos + zl_neg)
        s_r = r_right / self.modify_denominator(zr_pos + zr_neg)
        # pullbacks are linear in s and do not depend on the input: back_gp is W_γ⁺ᵀ, back_gn is
        # W_γ⁻ᵀ
        return (a_pos * (back_gp(s_l)[0] + back_gn(s_r)[0])
                + a_neg * (back_gn(s_l)[0] + back_gp(s_r)[0]),)


@dataclass(frozen=True, repr=False)
class LayerNormRule(LRPRule):
    r"""LRP-LN for LayerNorm (the standard deviation treated as a constant):

    ``R_i = Σ_j a_i (δ_ij − 1/N) / Σ_l a_l (δ_lj − 1/N) · R̂_j = a_i (t_i − mean(t))``,
    ``t_j = R̂_j / stab(a_j − μ)``, where ``R̂`` is the relevance at the normalised value after
    the affine part ``γ ⊙ x̂ + β`` under the generic rule (``R̂ = γx̂ ⊙ R / stab(γx̂ + β)``).

    ``stab(d) = d + ε·sign(d)`` with ``epsilon`` (default the library's stabiliser, 1e-9).

    Reference: A. Ali et al., *XAI for Transformers: Better Explanations through Conservative
    Propagation*, ICML 2022.
    """

    epsilon: float = DEFAULT_STABILIZER

    def __post_init__(self):
        _check_real("LayerNormRule", "epsilon", self.epsilon, positive=True)

    def modify_denominator(self, d):
        return stabilize_denom(d, self.epsilon)

    def __repr__(self) -> str:
        default = self.epsilon == DEFAULT_STABILIZER
        return "LayerNormRule()" if default else f"LayerNormRule(epsilon={self.epsilon!r})"

    def is_compatible(self, layer):
        return isinstance(layer, LayerNorm)

    def modify_layer(self, layer):
        return None

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        (a,) = inputs
        xp = namespace_of(a)
        axes = layer.axes(a)
        x_hat, _ = layer.normalize(a)
        r_hat = relevance
        if layer.weight is not None or layer.bias is not None:
            scaled = x_hat if layer.weight is None else x_hat * layer.weight
            r_hat = scaled * relevance / self.modify_denominator(layer.affine(x_hat))
        centered = a - xp.mean(a, axis=axes, keepdims=True)
        t = r_hat / self.modify_denominator(centered)
        return (a * (t - xp.mean(t, axis=axes, keepdims=True)),)


@dataclass(frozen=True, repr=False)
class L2NormalizeRule(LRPRule):
    r"""The identity rule for L2 normalisation (:class:`~lrp_core.L2Normalize`), its norm held
    constant, as AttnLRP holds LayerNorm's standard deviation constant:

    ``y = x / n`` with ``n = max(‖x‖₂, eps)`` treated as a constant is the elementwise linear
    map ``y_i = x_i / n``, whose LRP-0 gives ``R_i = (x_i / n) · R_i / y_i = R_i``: the
    relevance passes through unchanged, cell by cell (``R_in = R``; conservative). It equals
    gradient × input of the network with the norm detached.

    Reference: R. Achtibat et al., *AttnLRP: Attention-Aware Layer-Wise Relevance Propagation
    for Transformers*, ICML 2024 (the identity rule on normalisations whose normaliser is held
    constant); A. Ali et al., *XAI for Transformers: Better Explanations through Conservative
    Propagation*, ICML 2022.
    """

    def is_compatible(self, layer):
        return isinstance(layer, L2Normalize)

    def modify_layer(self, layer):
        return None

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        return (relevance,)
