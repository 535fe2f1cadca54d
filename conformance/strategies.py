"""Small random networks as data, as runnable torch code, and as torch modules.

A :class:`Network` is plain data: the modules (their constructor arguments and parameters as
float64 NumPy arrays) and the operations of ``forward`` in order. :meth:`Network.to_code` writes
it as a standalone torch program (a class ``Net``, its weights, the input and the targets), and
:meth:`Network.build` runs that same program, so a counterexample printed by the suite is
exactly the network it tested. :func:`networks` is the hypothesis strategy that draws them:
Dense, Conv (1-d and 2-d; stride, padding, dilation, groups), max and average pooling, adaptive
average pooling, Flatten, ReLU, BatchNorm, residual additions, concatenations and a module used
twice, with biases on and off (exact zeros included) and inputs that tie in max pooling.
"""

from __future__ import annotations

import itertools
import linecache
import math
from dataclasses import dataclass, field, replace

import numpy as np
from hypothesis import strategies as st

from .protocol import BOX_HIGH, BOX_LOW

__all__ = ["Module", "Op", "Network", "Case", "networks", "cases", "linear_layer_cases"]

_SOURCE_COUNTER = itertools.count()


@dataclass(frozen=True, eq=False)
class Module:
    """A torch module to create: ``torch.nn.<kind>(*args, **kwargs)`` with these parameters
    and buffers (float64 arrays, by attribute name)."""

    kind: str
    args: tuple
    kwargs: tuple  # ((name, value), ...)
    params: dict = field(default_factory=dict)

    def constructor(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"nn.{self.kind}({', '.join(parts)})"

    @property
    def options(self) -> dict:
        return dict(self.kwargs)


@dataclass(frozen=True)
class Op:
    """One line of ``forward``: ``call`` is a module name, ``"add"``, ``"cat"``; ``inputs`` are
    value numbers (0 is the input; op ``i`` makes value ``i + 1``)."""

    call: str
    inputs: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Network:
    """A network as data: per-sample input shape, modules by name, the ops of ``forward``."""

    input_shape: tuple[int, ...]
    modules: tuple[tuple[str, Module], ...]
    ops: tuple[Op, ...]
    n_outputs: int

    @property
    def module_map(self) -> dict[str, Module]:
        return dict(self.modules)

    def layer_count(self) -> int:
        return len(self.ops)

    # -- as code ---------------------------------------------------------------------------------
    def class_code(self) -> str:
        lines = ["class Net(nn.Module):", "    def __init__(self):", "        super().__init__()"]
        for name, module in self.modules:
            lines.append(f"        self.{name} = {module.constructor()}")
        lines += ["", "    def forward(self, v0):"]
        for i, op in enumerate(self.ops):
            args = [f"v{j}" for j in op.inputs]
            if op.call == "add":
                expr = " + ".join(args)
            elif op.call == "cat":
                expr = f"torch.cat([{', '.join(args)}], dim=1)"
            else:
                expr = f"self.{op.call}({args[0]})"
            lines.append(f"        v{i + 1} = {expr}")
        lines.append(f"        return v{len(self.ops)}")
        return "\n".join(lines)

    def weights_code(self) -> str:
        lines = ["model = Net().double().eval()", "with torch.no_grad():"]
        for name, module in self.modules:
            for attr, value in module.params.items():
                lines.append(f"    model.{name}.{attr}.copy_(torch.tensor({_literal(value)}, "
                             "dtype=torch.float64))")
        if len(lines) == 2:
            lines.append("    pass")
        return "\n".join(lines)

    def to_code(self, x: np.ndarray | None = None, targets=None) -> str:
        """A standalone torch program that builds this network (``model``), and with ``x`` and
        ``targets`` also the input and the targets."""
        parts = ["import torch", "from torch import nn", "", "", self.class_code(), "", "",
                 self.weights_code()]
        if x is not None:
            parts.append(f"x = torch.tensor({_literal(x)}, dtype=torch.float64)")
        if targets is not None:
            parts.append(f"targets = {list(targets)!r}")
        return "\n".join(parts) + "\n"

    def build(self):
        """The network as a ``torch.nn.Module`` (float64, eval mode), made by running
        :meth:`to_code`."""
        code = self.to_code()
        filename = f"<lrp-conformance network {next(_SOURCE_COUNTER)}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        namespace: dict = {}
        exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - our own generated code
        return namespace["model"]

    # -- equivalent networks -------------------------------------------------------------------
    def without_biases(self) -> Network:
        """The same network with every bias, BatchNorm shift and running mean set to 0."""
        modules = []
        for name, module in self.modules:
            params = dict(module.params)
            for attr in ("bias", "running_mean"):
                if attr in params:
                    params[attr] = np.zeros_like(params[attr])
            modules.append((name, replace(module, params=params)))
        return replace(self, modules=tuple(modules))

    def foldable_batchnorms(self) -> list[int]:
        """Indices of the ops that apply a BatchNorm to the output of a Conv or Linear op whose
        value nothing else reads (and whose module is used once)."""
        readers = self._readers()
        uses = self._module_uses()
        found = []
        for i, op in enumerate(self.ops):
            module = self.module_map.get(op.call)
            if module is None or not module.kind.startswith("BatchNorm"):
                continue
            (j,) = op.inputs
            if j == 0:
                continue
            producer = self.ops[j - 1]
            kind = self.module_map.get(producer.call)
            if kind is not None and kind.kind in ("Conv1d", "Conv2d", "Linear") \
                    and readers[j] == 1 and uses[producer.call] == 1:
                found.append(i)
        return found

    def fold_batchnorms(self) -> Network:
        """The equivalent network with each foldable BatchNorm folded into the Conv or Linear
        before it, written out here independently of lrp-core:
        ``W' = W · γ/√(var + eps)`` per output channel, ``b' = (b − mean) · γ/√(var + eps) + β``.
        """
        fold = set(self.foldable_batchnorms())
        modules = dict(self.modules)
        ops, renumber = [], {0: 0}
        for i, op in enumerate(self.ops):
            if i in fold:
                norm = modules.pop(op.call)
                producer = self.ops[op.inputs[0] - 1]
                modules[producer.call] = _folded(modules[producer.call], norm)
                renumber[i + 1] = renumber[op.inputs[0]]
                continue
            ops.append(Op(op.call, tuple(renumber[j] for j in op.inputs)))
            renumber[i + 1] = len(ops)
        names = [name for name, _ in self.modules if name in modules]
        return replace(self, modules=tuple((n, modules[n]) for n in names), ops=tuple(ops))

    def split_head(self) -> Network:
        """The equivalent network whose last Linear (``F -> K``) is two Linears (``F -> k`` and
        ``F -> K − k``) whose outputs are concatenated: every output neuron keeps its weights."""
        last = self.ops[-1]
        head = self.module_map[last.call]
        out_features = head.args[1]
        k = out_features // 2
        w, b = head.params["weight"], head.params.get("bias")
        bias = head.options.get("bias", True)
        upper = Module("Linear", (head.args[0], k), (("bias", bias),),
                       {"weight": w[:k], **({"bias": b[:k]} if b is not None else {})})
        lower = Module("Linear", (head.args[0], out_features - k), (("bias", bias),),
                       {"weight": w[k:], **({"bias": b[k:]} if b is not None else {})})
        modules = [(n, m) for n, m in self.modules if n != last.call]
        modules += [(f"{last.call}_a", upper), (f"{last.call}_b", lower)]
        n = len(self.ops)
        ops = list(self.ops[:-1]) + [Op(f"{last.call}_a", last.inputs),
                                     Op(f"{last.call}_b", last.inputs),
                                     Op("cat", (n, n + 1))]
        return replace(self, modules=tuple(modules), ops=tuple(ops))

    def only_output(self, t: int) -> Network:
        """The network whose last Linear keeps output ``t`` alone (one output)."""
        last = self.ops[-1]
        head = self.module_map[last.call]
        params = {"weight": head.params["weight"][t:t + 1]}
        if "bias" in head.params:
            params["bias"] = head.params["bias"][t:t + 1]
        kept = Module("Linear", (head.args[0], 1), head.kwargs, params)
        modules = tuple((n, kept if n == last.call else m) for n, m in self.modules)
        return replace(self, modules=modules, n_outputs=1)

    # -- helpers -------------------------------------------------------------------------------
    def _readers(self) -> list[int]:
        readers = [0] * (len(self.ops) + 1)
        for op in self.ops:
            for j in op.inputs:
                readers[j] += 1
        readers[-1] += 1
        return readers

    def _module_uses(self) -> dict[str, int]:
        uses: dict[str, int] = {}
        for op in self.ops:
            uses[op.call] = uses.get(op.call, 0) + 1
        return uses


def _folded(linear: Module, norm: Module) -> Module:
    p, q = linear.params, norm.params
    scale = q["weight"] / np.sqrt(q["running_var"] + norm.options.get("eps", 1e-5))
    shape = (-1,) + (1,) * (p["weight"].ndim - 1)
    weight = p["weight"] * scale.reshape(shape)
    bias = p.get("bias", np.zeros(scale.shape))
    bias = (bias - q["running_mean"]) * scale + q["bias"]
    kwargs = tuple((k, v) for k, v in linear.kwargs if k != "bias") + (("bias", True),)
    return Module(linear.kind, linear.args, kwargs, {"weight": weight, "bias": bias})


def _literal(array) -> str:
    return repr(np.asarray(array, dtype=np.float64).tolist())


# -- the strategy --------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Case:
    """One example: a network, an input batch (float64, within the box bounds), targets."""

    network: Network
    x: np.ndarray
    targets: tuple[int, ...]

    def to_code(self) -> str:
        return self.network.to_code(self.x, self.targets)


class _Builder:
    """Draws a network block by block, tracking the per-sample shape."""

    def __init__(self, draw, rng: np.random.Generator, *, biases: str, zeros: bool,
                 relu_after_linear: bool, batchnorm_after_linear: bool):
        self.draw, self.rng = draw, rng
        self.biases, self.zeros = biases, zeros
        self.relu_after_linear = relu_after_linear
        self.batchnorm_after_linear = batchnorm_after_linear
        self.modules: list[tuple[str, Module]] = []
        self.ops: list[Op] = []

    # values and modules
    def module(self, prefix: str, module: Module) -> str:
        name = f"{prefix}{len(self.modules)}"
        self.modules.append((name, module))
        return name

    def apply(self, call: str, *inputs: int) -> int:
        self.ops.append(Op(call, tuple(inputs)))
        return len(self.ops)

    def weights(self, shape, fan_in: int) -> np.ndarray:
        w = self.rng.standard_normal(shape) / math.sqrt(max(fan_in, 1))
        if self.zeros:
            w[self.rng.random(shape) < 0.25] = 0.0
        return w

    def bias(self, size: int):
        if self.biases == "none" or (self.biases == "random" and not self.draw(st.booleans())):
            return None
        if self.biases == "zero":
            return np.zeros(size)
        b = self.rng.standard_normal(size) * 0.2
        if self.zeros:
            b[self.rng.random(size) < 0.25] = 0.0
        return b

    # layers
    def linear(self, v: int, shape: tuple, out: int, *, activation=True) -> tuple[int, tuple]:
        (f,) = shape
        b = self.bias(out)
        params = {"weight": self.weights((out, f), f)}
        if b is not None:
            params["bias"] = b
        name = self.module("linear", Module("Linear", (f, out), (("bias", b is not None),),
                                            params))
        v = self.apply(name, v)
        if activation:
            v = self.after_linear(v, (out,))
        return v, (out,)

    def conv(self, v: int, shape: tuple, out: int, *, same: bool, activation=True,
             name: str | None = None) -> tuple[int, tuple]:
        c, spatial = shape[0], shape[1:]
        d = len(spatial)
        if name is None:
            if same:
                k, stride, dilation, groups = self.draw(st.sampled_from([1, 3])), 1, 1, 1
                padding = k // 2
            else:
                k = self.draw(st.integers(1, min(3, min(spatial))))
                stride = self.draw(st.integers(1, 2))
                dilation = self.draw(st.integers(1, 2)) if k > 1 else 1
                padding = self.draw(st.integers(0, k // 2 + (dilation - 1)))
                if any(n + 2 * padding < dilation * (k - 1) + 1 for n in spatial):
                    dilation = 1  # k <= n: the window fits
                divisors = [g for g in range(1, c + 1) if c % g == 0 and out % g == 0]
                groups = self.draw(st.sampled_from(divisors))
            b = self.bias(out)
            params = {"weight": self.weights((out, c // groups) + (k,) * d, c // groups * k ** d)}
            if b is not None:
                params["bias"] = b
            kwargs = (("stride", stride), ("padding", padding), ("dilation", dilation),
                      ("groups", groups), ("bias", b is not None))
            name = self.module("conv", Module(f"Conv{d}d", (c, out, k), kwargs, params))
        module = dict(self.modules)[name]
        opts = module.options
        k = module.args[2]
        new_spatial = tuple((n + 2 * opts["padding"] - opts["dilation"] * (k - 1) - 1)
                            // opts["stride"] + 1 for n in spatial)
        v = self.apply(name, v)
        if activation:
            v = self.after_linear(v, (out, *new_spatial))
        return v, (out, *new_spatial)

    def after_linear(self, v: int, shape: tuple) -> int:
        if self.batchnorm_after_linear:
            v = self.batchnorm(v, shape)
        if self.relu_after_linear or self.draw(st.booleans()):
            v = self.apply(self.module("relu", Module("ReLU", (), ())), v)
        return v

    def batchnorm(self, v: int, shape: tuple) -> int:
        c = shape[0]
        d = 1 if len(shape) <= 2 else 2
        zero_shift = self.biases in ("zero", "none")
        params = {"weight": self.rng.uniform(0.5, 1.5, c),
                  "bias": np.zeros(c) if zero_shift else self.rng.standard_normal(c) * 0.2,
                  "running_mean": np.zeros(c) if zero_shift else self.rng.standard_normal(c) * 0.2,
                  "running_var": self.rng.uniform(0.5, 1.5, c)}
        return self.apply(self.module("norm", Module(f"BatchNorm{d}d", (c,), (), params)), v)

    def pool(self, v: int, shape: tuple) -> tuple[int, tuple]:
        c, spatial = shape[0], shape[1:]
        d = len(spatial)
        k = self.draw(st.integers(1, min(3, min(spatial))))
        stride = self.draw(st.integers(1, k))
        padding = self.draw(st.integers(0, k // 2))
        kind = self.draw(st.sampled_from(["max", "avg", "adaptive"]))
        if kind == "adaptive":
            size = self.draw(st.integers(1, min(spatial)))
            module = Module(f"AdaptiveAvgPool{d}d", (size,), ())
            new = (c,) + (size,) * d
        else:
            kwargs = (("stride", stride), ("padding", padding))
            if kind == "avg":
                kwargs += (("count_include_pad", self.draw(st.booleans())),)
            module = Module(f"{'Max' if kind == 'max' else 'Avg'}Pool{d}d", (k,), kwargs)
            new = (c,) + tuple((n + 2 * padding - k) // stride + 1 for n in spatial)
        return self.apply(self.module("pool", module), v), new

    def block(self, v: int, shape: tuple) -> tuple[int, tuple]:
        spatial = len(shape) > 1
        kinds = ["layer", "residual", "concat", "twice", "batchnorm"]
        if spatial and min(shape[1:]) >= 2:
            kinds.append("pool")
        kind = self.draw(st.sampled_from(kinds))
        c = shape[0]
        width = self.draw(st.integers(1, 4))
        if kind == "pool":
            return self.pool(v, shape)
        if kind == "batchnorm":
            return self.batchnorm(v, shape), shape
        if kind == "layer":
            if spatial:
                return self.conv(v, shape, width, same=False)
            return self.linear(v, shape, width)
        if kind == "residual":
            h, _ = (self.conv(v, shape, c, same=True) if spatial else self.linear(v, shape, c))
            return self.apply("add", h, v), shape
        if kind == "concat":
            if spatial:
                a, _ = self.conv(v, shape, width, same=True)
                b, _ = self.conv(v, shape, c, same=True)
            else:
                a, _ = self.linear(v, shape, width)
                b, _ = self.linear(v, shape, c)
            return self.apply("cat", a, b), (width + c, *shape[1:])
        # twice: one module applied two times
        if spatial:
            h, _ = self.conv(v, shape, c, same=True, activation=False)
            name = self.ops[h - 1].call
            h = self.after_linear(h, shape)
            return self.conv(h, shape, c, same=True, name=name)
        h, _ = self.linear(v, shape, c, activation=False)
        name = self.ops[h - 1].call
        h = self.after_linear(h, shape)
        return self.after_linear(self.apply(name, h), shape), shape


@st.composite
def networks(draw, *, biases: str = "random", relu_after_linear: bool = False,
             batchnorm_after_linear: bool = False, max_blocks: int = 3) -> Network:
    """A random small network (see the module docstring). ``biases``: ``"random"`` (each layer
    on or off), ``"zero"`` (present and exactly 0, BatchNorm shifts and means 0 too) or
    ``"none"``; ``relu_after_linear``: every Conv and Linear but the head is followed by a ReLU;
    ``batchnorm_after_linear``: and by a BatchNorm before that."""
    rank = draw(st.sampled_from([0, 1, 2]))
    if rank == 0:
        shape = (draw(st.integers(2, 6)),)
    else:
        shape = (draw(st.integers(1, 3)),) + tuple(draw(st.integers(3, 7)) for _ in range(rank))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    b = _Builder(draw, rng, biases=biases, zeros=draw(st.booleans()),
                 relu_after_linear=relu_after_linear,
                 batchnorm_after_linear=batchnorm_after_linear)
    v, current = 0, shape
    for _ in range(draw(st.integers(0, max_blocks))):
        v, current = b.block(v, current)
    if len(current) > 1:
        v = b.apply(b.module("flatten", Module("Flatten", (), ())), v)
        current = (math.prod(current),)
    n_outputs = draw(st.integers(2, 4))
    v, _ = b.linear(v, current, n_outputs, activation=False)
    return Network(shape, tuple(b.modules), tuple(b.ops), n_outputs)


@st.composite
def cases(draw, network_strategy=None, *, batch: tuple[int, int] = (1, 3),
          ties: bool = True) -> Case:
    """A network, an input batch within ``[BOX_LOW, BOX_HIGH]`` (with ``ties``, sometimes on a
    coarse grid, so that max pooling ties and sums cancel exactly) and one target per sample."""
    network = draw(network_strategy if network_strategy is not None else networks())
    n = draw(st.integers(*batch))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.uniform(BOX_LOW, BOX_HIGH, (n, *network.input_shape))
    if ties and draw(st.booleans()):
        x = np.round(x * 2) / 2
    targets = tuple(draw(st.integers(0, network.n_outputs - 1)) for _ in range(n))
    return Case(network, x, targets)


@st.composite
def linear_layer_cases(draw) -> Case:
    """A single Linear, or a single Conv (1-d or 2-d, any geometry) followed by Flatten."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    b = _Builder(draw, rng, biases="random", zeros=draw(st.booleans()),
                 relu_after_linear=False, batchnorm_after_linear=False)
    rank = draw(st.sampled_from([0, 1, 2]))
    if rank == 0:
        shape = (draw(st.integers(1, 6)),)
        v, out = b.linear(0, shape, draw(st.integers(2, 4)), activation=False)
    else:
        shape = (draw(st.integers(1, 3)),) + tuple(draw(st.integers(3, 6)) for _ in range(rank))
        v, out = b.conv(0, shape, draw(st.integers(1, 3)), same=False, activation=False)
        v = b.apply(b.module("flatten", Module("Flatten", (), ())), v)
        out = (math.prod(out),)
    network = Network(shape, tuple(b.modules), tuple(b.ops), out[0])
    n = draw(st.integers(1, 2))
    x = rng.uniform(BOX_LOW, BOX_HIGH, (n, *shape))
    targets = tuple(draw(st.integers(0, out[0] - 1)) for _ in range(n))
    return Case(network, x, targets)
