"""One graph rewrite: keep, drop or fuse each node, in one walk in topological order.

``canonize`` (no-op removal, BatchNorm and activation fusion) and the ONNX reader's post-pass
(constant scale-and-shift folding, zero-pad absorption) are all calls of :func:`rewrite` with a
different ``decide``. For each node, ``decide(site)`` sees the node (its inputs already
renumbered by earlier decisions) and, where the node is its producer's only reader, the
producer's current layer, and returns one of:

* :func:`keep` ``(layer)``: the node stays, with ``layer`` (default: its own);
* :func:`drop` ``()``: the node goes; its output is its (single) input;
* :func:`fuse` ``(layer)``: the node goes into its producer, which takes ``layer``;
* :func:`absorb` ``(layer)``: the node takes its producer's place (and inputs), with ``layer``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph, Node
from .layers.base import Layer

__all__ = ["Site", "rewrite", "keep", "drop", "fuse", "absorb"]


@dataclass(frozen=True)
class Site:
    """What ``decide`` sees of one node."""

    index: int                 # the node's index in the graph being rewritten
    node: Node                 # the node, its inputs renumbered by earlier decisions
    producer: Layer | None     # the current layer of its producer, if the node is its sole reader
    producer_value: int | None  # the value index of that producer's output, else None


@dataclass(frozen=True)
class _Decision:
    action: str
    layer: Layer | None = None


def keep(layer: Layer | None = None) -> _Decision:
    """The node stays (with ``layer`` in place of its own, if given)."""
    return _Decision("keep", layer)


def drop() -> _Decision:
    """The node goes; whatever read its output reads its input."""
    return _Decision("drop")


def fuse(layer: Layer) -> _Decision:
    """The node goes into its producer, which becomes ``layer``."""
    return _Decision("fuse", layer)


def absorb(layer: Layer) -> _Decision:
    """The producer goes; the node becomes ``layer`` and reads the producer's inputs."""
    return _Decision("absorb", layer)


def rewrite(nodes, decide, *, output: int | None = None) -> Graph | None:
    """Rewrite ``nodes`` (a graph or a sequence of :class:`~lrp_core.Node`) node by node.

    ``output``: the value index of the output (default: the last node's). Returns the new graph,
    or ``None`` when the output became the input itself (every node on its path was dropped).
    """
    nodes = list(nodes.nodes if isinstance(nodes, Graph) else nodes)
    output = len(nodes) if output is None else output
    layers = [node.layer for node in nodes]
    inputs = [node.inputs for node in nodes]
    alive = [True] * len(nodes)
    readers = [0] * (len(nodes) + 1)
    for node in nodes:
        for j in node.inputs:
            readers[j] += 1
    readers[output] += 1
    redirect: dict[int, int] = {}

    def resolve(v: int) -> int:
        while v in redirect:
            v = redirect[v]
        return v

    for i, node in enumerate(nodes):
        inputs[i] = tuple(resolve(v) for v in inputs[i])
        producer_value = None
        if len(inputs[i]) == 1 and inputs[i][0] != 0:
            v = inputs[i][0]
            if readers[v] == 1 and alive[v - 1]:
                producer_value = v
        site = Site(i, Node(layers[i], inputs[i], node.name),
                    None if producer_value is None else layers[producer_value - 1], producer_value)
        decision = decide(site)
        if decision.action in ("fuse", "absorb") and producer_value is None:
            raise ValueError(f"rewrite: node {i} has no sole producer to {decision.action} with")
        if decision.action == "keep":
            if decision.layer is not None:
                layers[i] = decision.layer
        elif decision.action in ("drop", "fuse"):
            if decision.action == "fuse":
                layers[producer_value - 1] = decision.layer
            (v,) = inputs[i]
            alive[i] = False
            redirect[i + 1] = v
            readers[v] += readers[i + 1] - 1
        elif decision.action == "absorb":
            layers[i] = decision.layer
            inputs[i] = inputs[producer_value - 1]
            alive[producer_value - 1] = False
        else:  # pragma: no cover - decisions come from the functions above
            raise ValueError(f"rewrite: unknown decision {decision!r}")

    output = resolve(output)
    value_map = {0: 0}
    kept: list[Node] = []
    for i, node in enumerate(nodes):
        if alive[i]:
            kept.append(Node(layers[i], tuple(value_map[v] for v in inputs[i]), node.name))
            value_map[i + 1] = len(kept)
    if value_map.get(output, 0) == 0:
        return None
    return Graph.from_nodes(kept[: value_map[output]])
