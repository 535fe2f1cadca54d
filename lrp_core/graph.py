"""The model: a DAG of layers in topological order, with a chain as the special case.

Values are numbered: value 0 is the graph's input, value ``i + 1`` the output of node ``i``; a
node lists the values it reads. The graph's output is the last node's. Residual additions,
concatenations and a layer applied twice (two nodes sharing one layer) are all first-class.

Build one by hand either as a chain, ``lrp.Chain(conv, lrp.ReLU(), ...)``, or functionally::

    x = lrp.Input()
    h = lrp.Conv(w1, b1, padding=1, activation=lrp.relu)(x)
    y = lrp.Add()(lrp.Conv(w2, b2, padding=1)(h), h)
    model = lrp.Graph(x, y)
"""

from __future__ import annotations

from dataclasses import dataclass

from .layers.base import Layer, Symbol

__all__ = ["Node", "Graph", "Chain", "Input"]


@dataclass(frozen=True)
class Node:
    """A layer application: ``layer`` applied to the values numbered ``inputs``."""

    layer: Layer
    inputs: tuple[int, ...]
    name: str | None = None


class _Builder:
    """Collects nodes while a graph is built from symbolic tensors."""

    def __init__(self):
        self.nodes: list[Node] = []

    def add(self, layer: Layer, symbols, name=None) -> Symbol:
        if any(s.builder is not self for s in symbols):
            raise ValueError("the inputs of a layer come from different graphs under construction")
        if isinstance(layer, Graph):
            return layer._inline(self, symbols[0])
        layer._check_arity(len(symbols))
        self.nodes.append(Node(layer, tuple(s.index for s in symbols), name))
        return Symbol(self, len(self.nodes))


def Input() -> Symbol:
    """A symbolic input for building a :class:`Graph` by calling layers on it."""
    return Symbol(_Builder(), 0)


class Graph(Layer):
    """A DAG of layers with one input and one output, nodes in topological order.

    ``Graph(x, y)`` takes the symbolic input and output of a functional construction;
    ``Graph.from_nodes(nodes)`` takes :class:`Node` objects directly (model readers use it).
    Nodes that do not lead to the output are dropped.
    """

    def __init__(self, input: Symbol, output: Symbol):
        if not (isinstance(input, Symbol) and isinstance(output, Symbol)):
            raise TypeError("Graph(input, output) takes the symbolic tensors of lrp.Input(); "
                            "use lrp.Chain(*layers) for a chain or Graph.from_nodes(nodes)")
        if input.index != 0 or output.builder is not input.builder:
            raise ValueError("the output was not computed from this input")
        self._set_nodes(_prune(input.builder.nodes[: output.index], output.index))

    @classmethod
    def from_nodes(cls, nodes) -> "Graph":
        graph = cls.__new__(cls)
        nodes = list(nodes)
        graph._set_nodes(_prune(nodes, len(nodes)))
        return graph

    def _set_nodes(self, nodes):
        if not nodes:
            raise ValueError("a graph needs at least one layer")
        for i, node in enumerate(nodes):
            if not isinstance(node.layer, Layer):
                raise TypeError(f"node {i}: {node.layer!r} is not an lrp_core layer")
            if any(not 0 <= j <= i for j in node.inputs):
                raise ValueError(f"node {i} reads a value that is not computed before it: {node.inputs}")
        self.nodes: tuple[Node, ...] = tuple(nodes)

    # -- sequence protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, index: int) -> Layer:
        return self.nodes[index].layer

    def __iter__(self):
        return (node.layer for node in self.nodes)

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(self)

    @property
    def is_chain(self) -> bool:
        return all(node.inputs == (i,) for i, node in enumerate(self.nodes))

    def consumers(self) -> list[list[int]]:
        """For each value, the nodes that read it."""
        readers: list[list[int]] = [[] for _ in range(len(self.nodes) + 1)]
        for i, node in enumerate(self.nodes):
            for j in node.inputs:
                readers[j].append(i)
        return readers

    def label(self, index: int) -> str:
        """``"layer 3 (features.3: Conv(...))"``: how messages name a node."""
        node = self.nodes[index]
        name = f"{node.name}: " if node.name else ""
        return f"layer {index} ({name}{node.layer.describe()})"

    # -- computation ---------------------------------------------------------------------------
    def forward(self, x):
        values = [x]
        remaining = [len(r) for r in self.consumers()]
        for i, node in enumerate(self.nodes):
            values.append(node.layer.forward(*(values[j] for j in node.inputs)))
            for j in node.inputs:  # free what no later node reads
                remaining[j] -= 1
                if remaining[j] == 0 and j != 0:
                    values[j] = None
        return values[-1]

    def convert(self, fn) -> "Graph":
        return self.with_layers([layer.convert(fn) for layer in self])

    def with_layers(self, layers) -> "Graph":
        """The same wiring with other layers (one per node)."""
        return Graph.from_nodes(Node(layer, node.inputs, node.name) for layer, node in zip(layers, self.nodes))

    def _inline(self, builder: _Builder, symbol: Symbol) -> Symbol:
        indices = [symbol.index]
        for node in self.nodes:
            builder.nodes.append(Node(node.layer, tuple(indices[j] for j in node.inputs), node.name))
            indices.append(len(builder.nodes))
        return Symbol(builder, indices[-1])

    # -- display -------------------------------------------------------------------------------
    def describe(self) -> str:
        return f"{type(self).__name__}({len(self)} layers)"

    def __repr__(self) -> str:
        chain = self.is_chain
        lines = [f"{type(self).__name__}("]
        width = len(str(len(self) - 1))
        for i, node in enumerate(self.nodes):
            name = f"{node.name}: " if node.name else ""
            wiring = "" if chain else "  <- " + ", ".join("input" if j == 0 else str(j - 1) for j in node.inputs)
            lines.append(f"  {i:>{width}}  {name}{node.layer.describe()}{wiring}")
        lines.append(")")
        return "\n".join(lines)


class Chain(Graph):
    """A chain of layers, each reading the previous one's output; nested chains are inlined."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        x = Input()
        y = x
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Chain takes lrp_core layers, got {layer!r}")
            y = layer(y)
        if y is x:
            raise ValueError("a chain needs at least one layer")
        super().__init__(x, y)


def _prune(nodes, output_value: int) -> list[Node]:
    """Keep the nodes the output depends on, renumbering the values."""
    needed = {output_value}
    for i in range(len(nodes) - 1, -1, -1):
        if i + 1 in needed:
            needed.update(nodes[i].inputs)
    new_index = {0: 0}
    kept: list[Node] = []
    for i, node in enumerate(nodes):
        if i + 1 in needed:
            kept.append(Node(node.layer, tuple(new_index[j] for j in node.inputs), node.name))
            new_index[i + 1] = len(kept)
    return kept
