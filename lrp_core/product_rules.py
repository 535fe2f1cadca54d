"""Rules for the layers of attention and gating: products of two activations (``Mul``,
``MatMul``) and a softmax inside the network.

* :class:`UniformRule`: AttnLRP's rules for products (Achtibat et al., ICML 2024).
* :class:`CPRule`: CP-LRP, the gate held constant (Ali et al., ICML 2022).
* :class:`ProductRule`: ``CPRule`` on a product with a gate factor, another rule elsewhere
  (what the CNN presets and :func:`~lrp_core.CPLRP` use).
* :class:`SoftmaxRule`: AttnLRP's rule for a softmax.

A *gate* is a factor that comes out of a ``Sigmoid``, a ``Hardsigmoid`` or a ``Softmax`` (as
a layer of its own, or as the activation of a Dense/Conv), possibly through layers that only
move values (Reshape, Flatten, Permute, Slice, ZeroPad, Dropout, Identity).

References: R. Achtibat et al., *AttnLRP: Attention-Aware Layer-Wise Relevance Propagation
for Transformers*, ICML 2024; A. Ali et al., *XAI for Transformers: Better Explanations through
Conservative Propagation*, ICML 2022.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .arrays import namespace_of, stabilize_denom
from .errors import LRPCompatibilityError
from .layers import (
    DropoutLayer,
    Hardsigmoid,
    Identity,
    Mul,
    ProductLayer,
    ReshapingLayer,
    Sigmoid,
    Softmax,
)
from .layers.products import sum_to_shape
from .rules import NO_HINTS, LRPRule, StepHints, _check_real

__all__ = ["UniformRule", "CPRule", "ProductRule", "SoftmaxRule", "gate_factors"]

_GATES = (Sigmoid, Hardsigmoid, Softmax)
_MOVERS = (ReshapingLayer, DropoutLayer, Identity)  # one input, values only moved


def _comes_out_of_gate(graph, value: int) -> bool:
    while value != 0:
        node = graph.nodes[value - 1]
        layer = node.layer
        if isinstance(layer, _GATES) or isinstance(getattr(layer, "activation", None), _GATES):
            return True
        if not (isinstance(layer, _MOVERS) and len(node.inputs) == 1):
            return False
        value = node.inputs[0]
    return False


def gate_factors(graph, index: int) -> tuple[bool, ...]:
    """For node ``index`` of ``graph``, whether each of its inputs is a gate (comes out of a
    Sigmoid, Hardsigmoid or Softmax, possibly through layers that only move values)."""
    return tuple(_comes_out_of_gate(graph, j) for j in graph.nodes[index].inputs)


def _is_product(layer) -> bool:
    return isinstance(layer, ProductLayer)


@dataclass(frozen=True)
class UniformRule(LRPRule):
    r"""AttnLRP's rules for a product of two activations (Achtibat et al., ICML 2024).

    ``Mul``, ``y = a ⊙ b`` (Proposition 3.2, the uniform rule): each factor gets half,
    ``R_a = R_b = R / 2`` (summed back over the axes along which a factor was broadcast).

    ``MatMul``, ``y_ij = Σ_k a_ik b_kj`` (Proposition 3.3): the ε-rule over the sum, then the
    uniform rule on each term ``a_ik b_kj``:
    ``R_a,ik = Σ_j a_ik b_kj R_ij / stab(2 y_ij)`` and
    ``R_b,kj = Σ_i a_ik b_kj R_ij / stab(2 y_ij)``, with ``stab(d) = d + ε·sign(d)``; i.e.
    ``R_a = a ⊙ (s bᵀ)``, ``R_b = b ⊙ (aᵀ s)``, ``s = R / stab(2y)``. Conservative up to ``ε``.
    """

    epsilon: float = 1e-6

    def __post_init__(self):
        _check_real("UniformRule", "epsilon", self.epsilon, positive=True)

    def is_compatible(self, layer):
        return _is_product(layer)

    def modify_layer(self, layer):
        return None

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        a, b = inputs
        if isinstance(layer, Mul):
            half = relevance / 2.0
            return (sum_to_shape(half, a.shape), sum_to_shape(half, b.shape))
        z, pullback = layer.linearize(a, b)
        s = relevance / stabilize_denom(2.0 * z, self.epsilon)
        c_a, c_b = pullback(s)
        return (a * c_a, b * c_b)


@dataclass(frozen=True)
class CPRule(LRPRule):
    r"""CP-LRP on a product of two activations, one of them a gate (Ali et al., ICML 2022).

    The gate ``g`` (the factor that comes out of a softmax, a sigmoid or a hard sigmoid) is held
    constant and receives no relevance; the product is then a linear map of the other factor
    ``x``, and the ε-rule of that map gives ``x`` all of the relevance:

    ``Mul`` (``y = x ⊙ g``): ``R_x = x ⊙ g ⊙ R / stab(y)`` (summed back over broadcast axes),
    ``MatMul`` (``y = g @ x``, attention ``A @ V``): ``R_x = x ⊙ gᵀ (R / stab(y))`` (for
    ``y = x @ g``: ``R_x = x ⊙ (R / stab(y)) gᵀ``); and ``R_g = 0``, with
    ``stab(d) = d + ε·sign(d)``. (In the paper's transformer the gate is the attention matrix: no
    relevance flows through the softmax to the queries and keys.)

    ``gate`` (0 or 1: which input is the gate) is found from the graph when the analyzer is
    built (:meth:`bind`); a product with no gate factor, or with two, is refused with an
    :class:`~lrp_core.LRPCompatibilityError` (:class:`ProductRule` chooses per product). Give
    ``gate`` yourself only to use the rule outside an analyzer (:func:`lrp_core.propagate`).
    """

    epsilon: float = 1e-6
    gate: int | None = None

    def __post_init__(self):
        _check_real("CPRule", "epsilon", self.epsilon, positive=True)
        if self.gate not in (None, 0, 1) or isinstance(self.gate, bool):
            raise ValueError(f"CPRule: gate is 0 or 1 (the input that is the gate) or None (found "
                             f"from the graph), got {self.gate!r}")

    def is_compatible(self, layer):
        return _is_product(layer)

    def modify_layer(self, layer):
        return None

    def bind(self, graph, index):
        if self.gate is not None:
            return self
        gates = gate_factors(graph, index)
        if sum(gates) != 1:
            found = "both factors are" if all(gates) else "neither factor is"
            raise LRPCompatibilityError(
                f"CPRule cannot be applied to {graph.label(index)}: it holds the factor that is "
                f"a gate constant, and {found} (a gate comes out of a Softmax, Sigmoid or "
                "Hardsigmoid); use lrp.UniformRule() on this product, or lrp.ProductRule(), "
                "which chooses per product")
        return dataclasses.replace(self, gate=gates.index(True))

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        if self.gate is None:
            raise LRPCompatibilityError(
                f"CPRule on {layer.describe()}: which input is the gate is found from the graph "
                "when an analyzer is built; outside one, give it: lrp.CPRule(gate=0 or 1)")
        z, pullback = layer.linearize(*inputs)
        s = relevance / stabilize_denom(z, self.epsilon)
        contributions = pullback(s)
        other = 1 - self.gate
        result = [None, None]
        result[other] = inputs[other] * contributions[other]
        result[self.gate] = namespace_of(inputs[self.gate]).zeros_like(inputs[self.gate])
        return tuple(result)


@dataclass(frozen=True)
class ProductRule(LRPRule):
    """``gated`` (default ``CPRule()``) on a product whose one factor is a gate (out of a
    Softmax, Sigmoid or Hardsigmoid: squeeze-excitation ``x * sigmoid(...)``, attention
    ``softmax(...) @ v``), ``ungated`` (default ``UniformRule()``) on any other product (e.g.
    ``q @ kᵀ``). The choice is made per product when the analyzer is built (:meth:`bind`), and
    ``print(analyzer)`` shows the rule chosen."""

    gated: LRPRule = CPRule()
    ungated: LRPRule = UniformRule()

    def __post_init__(self):
        for name in ("gated", "ungated"):
            if not isinstance(getattr(self, name), LRPRule):
                raise TypeError(f"ProductRule: {name} must be an LRP rule, "
                                f"got {getattr(self, name)!r}")

    def is_compatible(self, layer):
        return _is_product(layer)

    def bind(self, graph, index):
        layer = graph.nodes[index].layer
        gates = gate_factors(graph, index)
        chosen = self.gated if sum(gates) == 1 else self.ungated
        if not chosen.is_compatible(layer):
            raise LRPCompatibilityError(f"{chosen!r} (chosen by {self!r}) cannot be applied to "
                                        f"{graph.label(index)}")
        return chosen.bind(graph, index)

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        raise LRPCompatibilityError(f"{self!r} chooses its rule from the graph when an analyzer "
                                    "is built; outside one, use CPRule(gate=...) or UniformRule()")


@dataclass(frozen=True)
class SoftmaxRule(LRPRule):
    r"""AttnLRP's rule for a softmax inside the network (Achtibat et al., ICML 2024,
    Proposition 3.1: the first-order Taylor decomposition at ``x``, the bias absorbed):

    ``R_x,i = x_i (R_i − s_i Σ_j R_j)``, ``s = softmax(x)``, sums along the softmax axis.

    This is the ε-rule on the softmax's linearisation at ``x``,
    ``R_x,i = Σ_j x_i (∂s_j/∂x_i) R_j / s_j``, written without the division (``s_j > 0``).
    ``epsilon > 0`` computes that division as ``R_j / (s_j + ε)`` instead; the default ``0``
    is the paper's equation. Not conservative (the softmax's "bias" takes a share), so
    conservation is no test of it. Non-finite scores (``-inf`` of an attention mask) count
    as 0, as their softmax output is 0. The input is the softmax's input: for attention the
    scaled scores ``q·kᵀ/√d``.
    """

    epsilon: float = 0.0

    def __post_init__(self):
        _check_real("SoftmaxRule", "epsilon", self.epsilon)

    def is_compatible(self, layer):
        return isinstance(layer, Softmax)

    def modify_layer(self, layer):
        return None

    def propagate(self, layer, modified_layer, inputs, relevance, hints: StepHints = NO_HINTS):
        (x,) = inputs
        xp = namespace_of(x)
        s = layer.forward(x) if hints.forward is None else hints.forward[0]
        x = xp.where(xp.isfinite(x), x, xp.zeros_like(x))
        # (∂s/∂x)ᵀ v = s ⊙ (v − Σ_j s_j v_j) with v = R / s: s ⊙ v = R
        r = relevance * (s / (s + self.epsilon)) if self.epsilon else relevance  # s ⊙ v
        return (x * (r - s * xp.sum(r, axis=layer.dim, keepdims=True)),)
