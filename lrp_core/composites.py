"""Composites: assign rules to layers by position and type (as in RelevancePropagation.jl).

A :class:`Composite` holds primitives. For each layer the primitives are tried from the last to
the first, and the last one that matches wins; a layer no primitive matches gets
:class:`~lrp_core.ZeroRule`. Layer indices count the layers of the (canonized) graph in
topological order, **from 0** (Python), as ``print(analyzer)`` numbers them; negative indices
count from the end.

Type maps take a dict ``{LayerType: rule}``; a key is a layer class or a group
(:class:`~lrp_core.ConvLayer`, :class:`~lrp_core.PoolingLayer`, ...) or a tuple of them, and the
first key (in the dict's order) that the layer is an instance of decides.
"""

from __future__ import annotations

from .layers import Layer
from .rules import LRPRule, ZeroRule

__all__ = [
    "Composite", "CompositeMap",
    "GlobalMap", "LayerMap", "RangeMap", "FirstLayerMap", "LastLayerMap",
    "GlobalTypeMap", "RangeTypeMap", "FirstLayerTypeMap", "FirstOfTypeMap", "LastLayerTypeMap",
    "FirstNTypeMap",
]


def _check_rule(rule) -> LRPRule:
    if not isinstance(rule, LRPRule):
        raise TypeError(f"expected an LRP rule (an lrp.LRPRule instance), got {rule!r}")
    return rule


def _check_type_map(mapping) -> dict:
    if not isinstance(mapping, dict) or not mapping:
        raise TypeError(f"a type map is a non-empty dict {{LayerType: rule}}, got {mapping!r}")
    for key, rule in mapping.items():
        keys = key if isinstance(key, tuple) else (key,)
        if not all(isinstance(k, type) and issubclass(k, Layer) for k in keys):
            raise TypeError(f"type map keys are layer classes or groups (e.g. lrp.ConvLayer), "
                            f"got {key!r}")
        _check_rule(rule)
    return dict(mapping)


def _index_range(value) -> range:
    if isinstance(value, range):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return range(*value)
    raise TypeError(f"a layer range is a range(...) or a (start, stop) tuple, got {value!r}")


def _type_name(key) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(k.__name__ for k in key) + ")"
    return key.__name__


class CompositeMap:
    """A composite primitive: maps some layers to rules."""

    def rule_for(self, index: int, layers) -> LRPRule | None:
        """The rule for layer ``index`` of ``layers`` (all layers, in topological order), or
        ``None`` where the primitive does not apply."""
        raise NotImplementedError

    def covers(self) -> str:
        """Which layers the primitive can apply to, in words."""
        raise NotImplementedError

    def _body(self) -> list[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        body = self._body()
        if len(body) == 1:
            return f"{type(self).__name__}({body[0]})"
        return f"{type(self).__name__}(\n" + "".join(f"  {line},\n" for line in body) + ")"


class _RuleMap(CompositeMap):
    def __init__(self, rule):
        self.rule = _check_rule(rule)

    def _matches(self, index, n_layers) -> bool:
        raise NotImplementedError

    def rule_for(self, index, layers):
        return self.rule if self._matches(index, len(layers)) else None

    def _body(self):
        return [repr(self.rule)]


class _TypeMap(CompositeMap):
    def __init__(self, mapping):
        self.mapping = _check_type_map(mapping)

    def _matches(self, index, n_layers) -> bool:
        raise NotImplementedError

    def rule_for(self, index, layers):
        if not self._matches(index, len(layers)):
            return None
        return self._rule_of_type(layers[index])

    def _rule_of_type(self, layer):
        for key, rule in self.mapping.items():
            if isinstance(layer, key):
                return rule
        return None

    def _body(self):
        width = max(len(_type_name(k)) for k in self.mapping)
        return [f"{_type_name(k):<{width}} => {r!r}" for k, r in self.mapping.items()]


def _resolve(index, n_layers):
    return index + n_layers if index < 0 else index


class GlobalMap(_RuleMap):
    """``rule`` on every layer."""

    def _matches(self, index, n_layers):
        return True

    def covers(self):
        return "all layers"


class LayerMap(_RuleMap):
    """``rule`` on the layer with ``index`` (from 0; negative counts from the end)."""

    def __init__(self, index: int, rule):
        super().__init__(rule)
        self.index = int(index)

    def _matches(self, index, n_layers):
        return index == _resolve(self.index, n_layers)

    def covers(self):
        return f"layer {self.index}"

    def _body(self):
        return [f"{self.index}, {self.rule!r}"]


class RangeMap(_RuleMap):
    """``rule`` on the layers whose index is in ``range`` (a ``range`` or ``(start, stop)``)."""

    def __init__(self, range_, rule):
        super().__init__(rule)
        self.range = _index_range(range_)

    def _matches(self, index, n_layers):
        return index in self.range

    def covers(self):
        return f"layers {self.range.start}..{self.range.stop - 1}"

    def _body(self):
        return [f"{self.range}, {self.rule!r}"]


class FirstLayerMap(_RuleMap):
    """``rule`` on the first layer (index 0)."""

    def _matches(self, index, n_layers):
        return index == 0

    def covers(self):
        return "the first layer"


class LastLayerMap(_RuleMap):
    """``rule`` on the last layer."""

    def _matches(self, index, n_layers):
        return index == n_layers - 1

    def covers(self):
        return "the last layer"


class GlobalTypeMap(_TypeMap):
    """``{LayerType: rule}`` on every layer."""

    def _matches(self, index, n_layers):
        return True

    def covers(self):
        return "all layers of these types"


class RangeTypeMap(_TypeMap):
    """``{LayerType: rule}`` on the layers whose index is in ``range``."""

    def __init__(self, range_, mapping):
        super().__init__(mapping)
        self.range = _index_range(range_)

    def _matches(self, index, n_layers):
        return index in self.range

    def covers(self):
        return f"layers {self.range.start}..{self.range.stop - 1} of these types"

    def _body(self):
        return [f"{self.range}"] + super()._body()


class FirstLayerTypeMap(_TypeMap):
    """``{LayerType: rule}`` on the first layer (index 0), if its type matches
    (RelevancePropagation.jl's meaning; see :class:`FirstOfTypeMap` for "the first conv")."""

    def _matches(self, index, n_layers):
        return index == 0

    def covers(self):
        return "the first layer, if of these types"


class FirstOfTypeMap(_TypeMap):
    """``{LayerType: rule}`` on the first layer, in topological order, that is of one of these
    types (Zennit's "first layer"): a leading input normalisation does not take its place."""

    def rule_for(self, index, layers):
        for i, layer in enumerate(layers):
            if self._rule_of_type(layer) is not None:
                return self._rule_of_type(layer) if i == index else None
        return None

    def _matches(self, index, n_layers):  # pragma: no cover - rule_for decides
        raise NotImplementedError

    def covers(self):
        return "the first layer of these types"


class LastLayerTypeMap(_TypeMap):
    """``{LayerType: rule}`` on the last layer, if its type matches."""

    def _matches(self, index, n_layers):
        return index == n_layers - 1

    def covers(self):
        return "the last layer, if of these types"


class FirstNTypeMap(_TypeMap):
    """``{LayerType: rule}`` on the first ``n`` layers (indices ``0..n-1``)."""

    def __init__(self, n: int, mapping):
        super().__init__(mapping)
        self.n = int(n)

    def _matches(self, index, n_layers):
        return index < self.n

    def covers(self):
        return f"layers 0..{self.n - 1} of these types"

    def _body(self):
        return [f"{self.n}"] + super()._body()


class Composite:
    """``Composite(*primitives)`` or ``Composite(default_rule, *primitives)``.

    The last matching primitive wins; unmatched layers get ``ZeroRule()``. A default rule is a
    :class:`GlobalMap` placed first.
    """

    def __init__(self, *primitives):
        if primitives and isinstance(primitives[0], LRPRule):
            primitives = (GlobalMap(primitives[0]),) + primitives[1:]
        for p in primitives:
            if not isinstance(p, CompositeMap):
                raise TypeError(f"Composite takes composite primitives (GlobalMap, LayerMap, ...) "
                                f"after an optional default rule, got {p!r}")
        self.primitives = tuple(primitives)

    def rules_for(self, layers) -> list[LRPRule]:
        """One rule per layer of ``layers`` (a graph or a sequence of layers)."""
        layers = list(layers)
        rules = []
        for index in range(len(layers)):
            for primitive in reversed(self.primitives):
                rule = primitive.rule_for(index, layers)
                if rule is not None:
                    break
            else:
                rule = ZeroRule()
            rules.append(rule)
        return rules

    def __repr__(self) -> str:
        lines = ["Composite("]
        for p in self.primitives:
            text = repr(p).splitlines()
            text[0] = f"{text[0]}" + ("" if len(text) > 1 else ",")
            comment = f"  # {p.covers()}"
            if len(text) == 1:
                lines.append(f"  {text[0]:<40}{comment}")
            else:
                lines.append(f"  {text[0]:<40}{comment}")
                lines.extend(f"  {line}" for line in text[1:-1])
                lines.append(f"  {text[-1]},")
        lines.append(")")
        return "\n".join(lines)
