"""Feature selectors for Concept Relevance Propagation: which concepts of a layer to explain.

A *concept* is one feature of a layer's output: a channel of a convolution's output
``(N, C, *spatial)`` or a neuron of a dense layer's output ``(N, F)`` (the features lie along
axis 1 either way). As in RelevancePropagation.jl:

- :class:`IndexedFeatures` ``(i, j, ...)``: the same fixed features for every sample;
- :class:`TopNFeatures` ``(n)``: for each sample, the ``n`` features with the largest
  relevance at the layer (summed over space), largest first.

A selector sees the relevance of every feature of the layer, ``(N, C)`` on the host, and
returns the chosen feature indices, ``(N, n_concepts)``; :class:`~lrp_core.CRP` calls it.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["FeatureSelector", "IndexedFeatures", "TopNFeatures"]


class FeatureSelector:
    """Base class of the feature selectors of :class:`~lrp_core.CRP`.

    A subclass implements :meth:`select`.
    """

    def select(self, feature_relevance: np.ndarray, where: str) -> np.ndarray:
        """The chosen features of each sample, an ``(N, n_concepts)`` integer array, given
        ``feature_relevance`` ``(N, C)``: the relevance of each of the ``C`` features of the layer
        summed over its other axes. ``where`` names the layer for error messages."""
        raise NotImplementedError


class IndexedFeatures(FeatureSelector):
    """The features ``indices`` (channels of a convolution, neurons of a dense layer), in the
    given order, for every sample: ``IndexedFeatures(3)``, ``IndexedFeatures(3, 17, 42)`` or
    ``IndexedFeatures([3, 17, 42])``. Indices count from 0; one out of range for the layer is a
    ``ValueError`` naming the layer and its number of features."""

    def __init__(self, *indices):
        if len(indices) == 1 and not isinstance(indices[0], (int, np.integer)) and \
                hasattr(indices[0], "__iter__"):
            indices = tuple(indices[0])
        if not indices:
            raise ValueError("IndexedFeatures needs at least one feature index, like "
                             "IndexedFeatures(3) or IndexedFeatures(3, 17)")
        checked = []
        for i in indices:
            if isinstance(i, bool):
                raise TypeError(f"IndexedFeatures takes integer feature indices, got {i!r}")
            try:
                i = operator.index(i)
            except TypeError:
                raise TypeError(f"IndexedFeatures takes integer feature indices, got {i!r}") \
                    from None
            if i < 0:
                raise ValueError(f"IndexedFeatures: feature indices count from 0, got {i}")
            if i in checked:
                raise ValueError(f"IndexedFeatures: feature {i} is given twice")
            checked.append(i)
        self.indices: tuple[int, ...] = tuple(checked)

    def select(self, feature_relevance: np.ndarray, where: str) -> np.ndarray:
        n, c = feature_relevance.shape
        bad = [i for i in self.indices if i >= c]
        if bad:
            raise ValueError(f"IndexedFeatures: feature {bad[0]} is out of range for {where}, "
                             f"which has {c} features (0..{c - 1})")
        return np.broadcast_to(np.asarray(self.indices, dtype=np.int64), (n, len(self.indices)))

    def __repr__(self) -> str:
        return f"IndexedFeatures({', '.join(map(str, self.indices))})"


class TopNFeatures(FeatureSelector):
    """For each sample, the ``n`` features (channels or neurons) with the largest relevance at the
    layer, summed over space, largest first (ties: the lower index first). ``n`` larger than the
    layer's number of features is a ``ValueError`` naming the layer."""

    def __init__(self, n):
        if isinstance(n, bool):
            raise TypeError(f"TopNFeatures takes a positive integer, got {n!r}")
        try:
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"TopNFeatures takes a positive integer, got {n!r}") from None
        if n < 1:
            raise ValueError(f"TopNFeatures: n is the number of features to explain, 1 or more; "
                             f"got {n}")
        self.n = n

    def select(self, feature_relevance: np.ndarray, where: str) -> np.ndarray:
        c = feature_relevance.shape[1]
        if self.n > c:
            raise ValueError(f"TopNFeatures({self.n}): {where} has only {c} features; "
                             f"give n <= {c}")
        order = np.argsort(-feature_relevance, axis=1, kind="stable")
        return np.ascontiguousarray(order[:, : self.n])

    def __repr__(self) -> str:
        return f"TopNFeatures({self.n})"
