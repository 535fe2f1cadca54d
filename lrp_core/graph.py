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

import copy
from dataclasses import dataclass

from .layers.base import Layer, Symbol

__all__ = ["Node", "Graph", "GraphBuilder", "Chain", "Input"]


@dataclass(frozen=True)
class Node:
    """A layer application: ``layer`` applied to the values numbered ``inputs``."""

    layer: Layer
    inputs: tuple[int, ...]
    name: str | None = None


class GraphBuilder:
    """Builds a graph node by node; the one builder behind :func:`Input`, both model readers and
    graphs built by hand.

    Value 0 is the input; :meth:`add` appends a node and returns the index of its output value::

        b = lrp.GraphBuilder()
        h = b.add(lrp.Conv(w, b0, padding=1), [0], name="conv1")
        y = b.add(lrp.Add(), [b.add(lrp.ReLU(), [h]), h], name="residual")
        model = b.build(y)

    Calling a layer on the symbolic tensors of :func:`Input` does the same through :meth:`call`.
    """

    def __init__(self):
        self.nodes: list[Node] = []

    def add(self, layer: Layer, inputs, name: str | None = None) -> int:
        """Append ``layer`` applied to the values ``inputs``; the index of its output value."""
        if isinstance(layer, Graph):
            raise TypeError("GraphBuilder.add takes a layer; call a graph on a symbolic tensor "
                            "to inline it")
        if not isinstance(layer, Layer):
            raise TypeError(f"{layer!r} is not an lrp_core layer")
        inputs = tuple(int(j) for j in inputs)
        if any(not 0 <= j <= len(self.nodes) for j in inputs):
            raise ValueError(f"{layer.describe()} reads a value that does not exist yet: {inputs} "
                             f"(values 0..{len(self.nodes)})")
        layer._check_arity(len(inputs))
        self.nodes.append(Node(layer, inputs, name))
        return len(self.nodes)

    def call(self, layer: Layer, symbols, name: str | None = None) -> Symbol:
        """``layer`` applied to symbolic tensors of this builder (a graph is inlined)."""
        if any(s.builder is not self for s in symbols):
            raise ValueError("the inputs of a layer come from different graphs under construction")
        if isinstance(layer, Graph):
            return layer._inline(self, symbols[0])
        return Symbol(self, self.add(layer, tuple(s.index for s in symbols), name))

    def build(self, output: int | None = None) -> Graph:
        """The graph whose output is the value ``output`` (default: the last node's)."""
        output = len(self.nodes) if output is None else int(output)
        if output == 0:
            raise ValueError("the output is the input itself: a graph needs at least one layer")
        return Graph.from_nodes(self.nodes[:output])


def Input() -> Symbol:
    """A symbolic input for building a :class:`Graph` by calling layers on it."""
    return Symbol(GraphBuilder(), 0)


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

    #: the per-sample input shape the model declares (``None`` for a dimension it leaves open),
    #: or ``None`` when it declares none; the analyzer refuses inputs of another shape
    input_shape: tuple | None = None

    def with_input_shape(self, shape) -> Graph:
        """The same graph, declaring the per-sample input ``shape`` (``None`` entries: open)."""
        new = copy.copy(self)
        new.input_shape = None if shape is None else tuple(
            None if d is None else int(d) for d in shape)
        return new

    @classmethod
    def from_nodes(cls, nodes) -> Graph:
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
                raise ValueError(f"node {i} reads a value that is not computed before it: "
                                 f"{node.inputs}")
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
        for node in self.nodes:
            values.append(node.layer.forward(*(values[j] for j in node.inputs)))
            for j in node.inputs:  # free what no later node reads
                remaining[j] -= 1
                if remaining[j] == 0 and j != 0:
                    values[j] = None
        return values[-1]

    def convert(self, fn) -> Graph:
        return self.with_layers([layer.convert(fn) for layer in self])

    def with_layers(self, layers) -> Graph:
        """The same wiring with other layers (one per node)."""
        return Graph.from_nodes(Node(layer, node.inputs, node.name)
                                for layer, node in zip(layers, self.nodes))

    def _inline(self, builder: GraphBuilder, symbol: Symbol) -> Symbol:
        indices = [symbol.index]
        for node in self.nodes:
            indices.append(builder.add(node.layer, tuple(indices[j] for j in node.inputs),
                                       node.name))
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
            wiring = "" if chain else "  <- " + ", ".join("input" if j == 0 else str(j - 1)
                                                          for j in node.inputs)
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
