"""The result of an analysis (as RelevancePropagation.jl's ``Explanation``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Explanation"]


@dataclass(frozen=True, eq=False)
class Explanation:
    """Relevance and what it explains.

    ``val``: the relevance, same shape, dtype, namespace and device as ``input``;
    ``output``: the model output (logits); ``output_selection``: the explained output index of
    each sample (a list of ints; ``None`` when started from a given ``output_relevance``);
    ``analyzer``: ``"LRP"`` (or ``"CRP"``: then ``val`` is ``(N, n_concepts, *input[1:])``
    and ``extras`` holds the concepts, see :class:`~lrp_core.CRP`); ``heatmap``:
    ``"attribution"`` (how to render it); ``extras``: ``None`` or
    ``{"layerwise_relevances": [...]}``.
    """

    val: object
    input: object
    output: object
    output_selection: list | None
    analyzer: str = "LRP"
    heatmap: str = "attribution"
    extras: dict | None = None

    def __repr__(self) -> str:
        shape = tuple(self.val.shape)
        return (f"Explanation(analyzer={self.analyzer!r}, val: {shape} {self.val.dtype}, "
                f"output_selection={self.output_selection})")
