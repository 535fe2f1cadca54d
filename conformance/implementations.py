"""The implementations the suite ships, and the loader for any other.

Built in (:data:`BUILTIN_IMPLEMENTATIONS`, name -> factory):

- ``lrp_core-numpy``, ``lrp_core-torch``, ``lrp_core-torch-cuda``,
  ``lrp_core-array-api-strict``, ``lrp_core-cupy``: this library,
  ``lrp.LRP(model, lrp.preset(name))`` run on the input as a float64 NumPy array, the torch
  tensor itself, a float64 tensor on CUDA (with a CUDA copy of the model), an array-api-strict
  array or a CuPy array (all presets);
- ``zennit``: Zennit's own composites and attributor (:class:`Zennit`, all presets);
- ``captum``: Captum's ``LRP`` (:class:`Captum`, ``zero`` only: see its docstring why).

An implementation that cannot explain a given model faithfully raises :class:`UnsupportedModel`
(a ``NotImplementedError``, which the suite counts as a skipped example, not a failure). A
built-in whose dependencies are missing raises :class:`ImplementationUnavailable` when made.

Zennit and Captum work by hooks on modules, so both adapters run on a private copy of the
model rewritten with ``torch.fx`` (:func:`hookable_copy`): one module per application of a module
(a module applied twice would have its hooks overwrite their own records), no-ops (Identity,
Dropout in eval mode) left out as lrp-core's canonize leaves them out, each functional
addition of two tensors through the library's addition module (``zennit.layer.Sum``, Captum's
``Addition_Module``; a bare ``+`` passes the gradient, which copies relevance to both summands
instead of splitting it), functional ReLUs as ``nn.ReLU`` modules, and modules registered in the
order they run. A model with any other operation outside a module, or a module without a
faithful rule, is refused.
"""

from __future__ import annotations

import copy
import importlib
import operator
import warnings
from collections import Counter

import numpy as np

import lrp_core as lrp
from lrp_core.presets import NEEDS_BOUNDS

from .protocol import BOX_HIGH, BOX_LOW, EPSILON, GAMMA, PRESET_NAMES, Implementation

__all__ = ["BUILTIN_IMPLEMENTATIONS", "ImplementationUnavailable", "UnsupportedModel",
           "LrpCoreNumPy", "LrpCoreTorch", "LrpCoreArrayApiStrict", "LrpCoreCuPy", "Zennit",
           "Captum", "available_implementations", "hookable_copy", "load_implementation",
           "lrp_core_preset"]

#: lrp-core's stabiliser of every rule but EpsilonRule (docs/conventions.md)
STABILIZER = 1e-9


class ImplementationUnavailable(ImportError):
    """A built-in implementation's dependencies do not import here (for CuPy: or there is no
    CUDA device)."""


class UnsupportedModel(NotImplementedError):
    """The implementation cannot explain this model (or this model under this preset)
    faithfully; the message says why."""


def _require_supported(impl, preset: str) -> None:
    if preset not in impl.supports:
        raise ValueError(f"{impl.name} does not support the preset {preset!r}; it supports "
                         f"{', '.join(p for p in PRESET_NAMES if p in impl.supports)}")


def _targets(targets) -> list[int]:
    return [operator.index(t) for t in targets]


# -- lrp-core ------------------------------------------------------------------------------------

def lrp_core_preset(name: str) -> lrp.Composite:
    """The preset ``name`` with the suite's parameters: ``epsilon = EPSILON`` on Dense layers,
    ``gamma = GAMMA`` and the bounds ``[BOX_LOW, BOX_HIGH]`` for ``epsilon_gamma_box``."""
    if name == "zero":
        return lrp.preset(name)
    if name in NEEDS_BOUNDS:
        return lrp.preset(name, low=BOX_LOW, high=BOX_HIGH, epsilon=EPSILON, gamma=GAMMA)
    return lrp.preset(name, epsilon=EPSILON)


class _LrpCore:
    """This library on one array namespace. Each preset ``name`` is
    ``lrp.LRP(model, lrp.preset(name))`` (``epsilon_gamma_box`` with ``low=BOX_LOW,
    high=BOX_HIGH``), called with ``output_selection=targets`` and the default
    ``normalize_output_relevance=True`` (the target's relevance is 1)."""

    name = "lrp_core"

    def __init__(self):
        self.supports = set(PRESET_NAMES)

    def _convert(self, x):
        raise NotImplementedError

    def _to_numpy(self, relevance) -> np.ndarray:
        raise NotImplementedError

    def explain(self, model, x, preset: str, targets: list[int]) -> np.ndarray:
        _require_supported(self, preset)
        analyzer = lrp.LRP(model, lrp_core_preset(preset))  # per call: every call has its model
        explanation = analyzer(self._convert(x), output_selection=_targets(targets))
        return self._to_numpy(explanation.val)


def _numpy_float64(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=np.float64, copy=True)


class LrpCoreNumPy(_LrpCore):
    """lrp-core on a float64 NumPy copy of ``x``; presets as in :class:`_LrpCore` (each name ->
    ``lrp.preset(name)``, ``epsilon_gamma_box`` with the suite's bounds)."""

    name = "lrp_core-numpy"

    def _convert(self, x):
        return _numpy_float64(x)

    def _to_numpy(self, relevance):
        return np.asarray(relevance)


class LrpCoreTorch(_LrpCore):
    """lrp-core on the torch tensor ``x`` itself (its dtype and device); presets as in
    :class:`_LrpCore` (each name -> ``lrp.preset(name)``, ``epsilon_gamma_box`` with the suite's
    bounds)."""

    name = "lrp_core-torch"

    def __init__(self):
        try:
            import torch  # noqa: F401
        except ImportError as error:
            raise ImplementationUnavailable(f"{self.name} needs torch: {error}") from error
        super().__init__()

    def _convert(self, x):
        return x

    def _to_numpy(self, relevance):
        return relevance.detach().cpu().numpy()


class LrpCoreTorchCuda(_LrpCore):
    """lrp-core on CUDA: a private copy of the model moved to the current CUDA device and the
    input moved there as a float64 tensor (the model itself is never moved); presets as in
    :class:`_LrpCore`. Available only where torch finds a CUDA device."""

    name = "lrp_core-torch-cuda"

    def __init__(self):
        try:
            import torch
        except ImportError as error:
            raise ImplementationUnavailable(f"{self.name} needs torch: {error}") from error
        if not torch.cuda.is_available():
            raise ImplementationUnavailable(f"{self.name} needs a CUDA device: torch finds none")
        self._torch = torch
        super().__init__()

    def explain(self, model, x, preset: str, targets: list[int]) -> np.ndarray:
        import copy

        on_gpu = copy.deepcopy(model).to("cuda")
        return super().explain(on_gpu, x, preset, targets)

    def _convert(self, x):
        return self._torch.as_tensor(_numpy_float64(x), device="cuda")

    def _to_numpy(self, relevance):
        return relevance.detach().cpu().numpy()


class LrpCoreArrayApiStrict(_LrpCore):
    """lrp-core on ``array_api_strict.asarray`` of a float64 NumPy copy of ``x`` (the strict
    array-API namespace: no NumPy behaviour beyond the standard); presets as in
    :class:`_LrpCore` (each name -> ``lrp.preset(name)``, ``epsilon_gamma_box`` with the suite's
    bounds). The result comes back through DLPack (``numpy.from_dlpack``)."""

    name = "lrp_core-array-api-strict"

    def __init__(self):
        try:
            import array_api_strict
        except ImportError as error:
            raise ImplementationUnavailable(f"{self.name} needs array-api-strict: {error}") \
                from error
        self._xp = array_api_strict
        super().__init__()

    def _convert(self, x):
        return self._xp.asarray(_numpy_float64(x))

    def _to_numpy(self, relevance):
        return np.array(np.from_dlpack(relevance), copy=True)


class LrpCoreCuPy(_LrpCore):
    """lrp-core on a CuPy copy of ``x`` (float64, current CUDA device); presets as in
    :class:`_LrpCore` (each name -> ``lrp.preset(name)``, ``epsilon_gamma_box`` with the suite's
    bounds). Available only where CuPy imports and finds a CUDA device."""

    name = "lrp_core-cupy"

    def __init__(self):
        try:
            import cupy
        except ImportError as error:
            raise ImplementationUnavailable(
                f"{self.name} needs CuPy, which does not import here ({error}); install "
                "lrp-core[cupy] on a machine with a CUDA device") from error
        try:
            devices = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # noqa: BLE001 - CUDARuntimeError and driver errors alike
            raise ImplementationUnavailable(
                f"{self.name} needs a CUDA device: CuPy imports but CUDA answers "
                f"{type(error).__name__}: {error}") from error
        if devices < 1:
            raise ImplementationUnavailable(f"{self.name} needs a CUDA device: CuPy finds none")
        self._cupy = cupy
        super().__init__()

    def _convert(self, x):
        return self._cupy.asarray(_numpy_float64(x))

    def _to_numpy(self, relevance):
        return self._cupy.asnumpy(relevance)


# -- a hookable copy of a torch model ------------------------------------------------------------

def _neutral_operations():
    """The functions and tensor methods outside modules through which the gradient carries
    relevance as LRP does (reshapes and slices route it, a concatenation hands each input its
    slice), the additions, and the ReLUs (made modules)."""
    import torch
    import torch.nn.functional as F

    functions = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.cat,
                 torch.concat, torch.permute, torch.transpose, operator.getitem, getattr}
    methods = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "contiguous", "size", "dim",
               "permute", "transpose"}
    additions = {operator.add, operator.iadd, torch.add}
    relus = {torch.relu, F.relu}
    return functions, methods, additions, relus


def hookable_copy(model, who: str, *, module_ok, addition, stack_summands: bool = False):
    """A private copy of ``model`` as a ``torch.fx.GraphModule`` for hook-based implementations
    (see the module docstring): flat module names in the order the modules run, one module per
    application, ``addition()`` modules in place of functional additions ``a + b`` (called on
    ``(a, b)``, or on ``torch.stack([a, b], dim=-1)`` with ``stack_summands``), and ``nn.ReLU``
    modules in place of functional ReLUs. ``module_ok(module)`` says whether the
    implementation has a faithful rule for a module; raises :class:`UnsupportedModel` where
    it has none, or for any other operation outside modules."""
    import torch
    import torch.fx

    try:
        traced = torch.fx.symbolic_trace(copy.deepcopy(model))
    except Exception as error:  # noqa: BLE001 - whatever stops the tracer
        raise UnsupportedModel(f"{who}: torch.fx cannot trace the model ({type(error).__name__}: "
                               f"{error}), so its operations cannot be checked") from error
    graph = traced.graph
    originals = dict(traced.named_modules())
    functions, methods, additions, relus = _neutral_operations()
    modules: dict[str, torch.nn.Module] = {}
    uses = Counter(node.target for node in graph.nodes if node.op == "call_module")
    for node in list(graph.nodes):
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            module = originals[node.target]
            dropout = isinstance(module, torch.nn.modules.dropout._DropoutNd)
            if isinstance(module, torch.nn.Identity) or (dropout and not module.training):
                node.replace_all_uses_with(node.args[0])  # a no-op, as lrp-core's canonize drops
                graph.erase_node(node)
                continue
            if not module_ok(module):
                raise UnsupportedModel(f"{who}: no faithful rule for {type(module).__name__} "
                                       f"({node.target})")
            if uses[node.target] > 1:
                module = copy.deepcopy(module)
            name = f"m{len(modules)}_{node.target.replace('.', '_')}"
            modules[name] = module
            node.target = name
            continue
        target = node.target
        if node.op == "call_function" and target in additions:
            if len(node.args) != 2 or node.kwargs or not all(
                    isinstance(a, torch.fx.Node) for a in node.args):
                raise UnsupportedModel(f"{who}: the model computes {node.format_node()}; only "
                                       "additions of two tensors have a faithful rule")
            args = tuple(node.args)
            if stack_summands:
                with graph.inserting_before(node):
                    args = (graph.call_function(torch.stack, (list(args),), {"dim": -1}),)
            _replace_by_module(traced, node, modules, f"m{len(modules)}_add", addition(), args)
        elif (node.op == "call_function" and target in relus) or \
                (node.op == "call_method" and target == "relu"):
            _replace_by_module(traced, node, modules, f"m{len(modules)}_relu", torch.nn.ReLU(),
                               (node.args[0],))
        elif (node.op == "call_function" and target in functions) or \
                (node.op == "call_method" and target in methods):
            continue
        else:
            raise UnsupportedModel(f"{who}: the model computes {node.format_node()} outside a "
                                   f"module; {who} would pass plain gradients through it")
    copied = torch.fx.GraphModule(modules, graph, class_name=type(model).__name__)
    copied.graph.lint()
    return copied.train(model.training)


def _replace_by_module(traced, node, modules, name, module, args):
    modules[name] = module
    traced.add_submodule(name, module)  # the graph checks its owner has it
    graph = traced.graph
    with graph.inserting_before(node):
        replacement = graph.call_module(name, args)
    node.replace_all_uses_with(replacement)
    graph.erase_node(node)


def _inputs(node):
    return [a for a in node.args if hasattr(a, "op")]


def _onehot(output, targets: list[int]):
    """The output relevance: 1 at each sample's target (a flat index into its outputs)."""
    import torch

    flat = torch.zeros(output.shape[0], output[0].numel(), dtype=output.dtype,
                       device=output.device)
    flat[torch.arange(len(targets)), torch.tensor(targets, device=output.device)] = 1
    return flat.reshape(output.shape)


# -- Zennit --------------------------------------------------------------------------------------

class Zennit:
    """Zennit 0.5's own composites and its ``Gradient`` attributor, with the output relevance
    one-hot at the targets, ``stabilizer=1e-9`` (lrp-core's, for every rule but epsilon),
    ``MaxPool -> Norm(1e-9)`` (lrp-core's generic rule on max pooling; Zennit's default is the
    plain gradient) and ``NamedMergeBatchNorm`` on the BatchNorms lrp-core fuses (one right
    after a Conv or Linear that nothing else reads, or after a BatchNorm so fused; Zennit's
    ``SequentialMergeBatchNorm`` pairs modules by registration order instead of by the graph).
    Presets:

    - ``zero``: Zennit has no LRP-0 composite; a ``NameLayerMapComposite`` of Zennit's rules:
      ``Epsilon(1e-9)`` (LRP-0 with lrp-core's stabiliser) on Conv, Linear and unmerged
      BatchNorm, ``Norm(1e-9)`` on pooling and additions, ``Pass`` on activations and on the
      merged (identity) BatchNorms;
    - ``epsilon_plus``, ``epsilon_alpha2_beta1``: ``EpsilonPlus``, ``EpsilonAlpha2Beta1`` with
      ``epsilon=1e-6``;
    - ``epsilon_plus_flat``, ``epsilon_alpha2_beta1_flat``: ``EpsilonPlusFlat``,
      ``EpsilonAlpha2Beta1Flat``, their first-layer map narrowed from Zennit's "first linear
      layer" (Conv *or* Linear) to the first convolution, lrp-core's meaning (they differ where
      a Linear runs before any conv, e.g. on a network without convs);
    - ``epsilon_gamma_box``: ``EpsilonGammaBox(low, high, epsilon=1e-6, gamma=0.25)``, the
      bounds mapped through BatchNorms between the input and the first conv as lrp-core maps
      them. Zennit's ``Gamma`` is the *generalised* gamma rule (Andéol et al. 2021): it equals
      lrp-core's ``GammaRule`` on a conv whose input is non-negative and whose neurons with
      ``z <= 0`` receive no relevance (true after a ReLU whose reader multiplies by its input,
      false when an unfused BatchNorm under PassRule follows the ReLU, or without a ReLU). The
      adapter checks both during the pass and refuses the example where either fails.

    Zennit merges a BatchNorm by leaving it to compute ``x / sqrt(1 + eps)``, a relative change
    of eps/2 (5e-6 with torch's default) that lrp-core does not make; the copy the adapter runs
    on carries each BatchNorm's eps in its running variance instead (``var + eps``, ``eps = 0``:
    the same function), so the merged BatchNorm is the identity.
    """

    name = "zennit"

    def __init__(self):
        try:
            import zennit  # noqa: F401
        except ImportError as error:
            raise ImplementationUnavailable(f"{self.name} needs zennit: {error}") from error
        self.supports = set(PRESET_NAMES)

    @staticmethod
    def _module_ok(module) -> bool:
        import torch.nn as nn
        from zennit.layer import Sum
        from zennit.types import Activation, AvgPool, BatchNorm, Linear, MaxPool

        if isinstance(module, nn.MultiheadAttention):
            return False
        return isinstance(module, (Linear, BatchNorm, AvgPool, MaxPool, Activation, Sum,
                                   nn.Flatten, nn.Unflatten, nn.Identity,
                                   nn.modules.dropout._DropoutNd))

    def explain(self, model, x, preset: str, targets: list[int]) -> np.ndarray:
        from zennit.attribution import Gradient
        from zennit.layer import Sum
        from zennit.types import BatchNorm, Convolution, Linear

        _require_supported(self, preset)
        targets = _targets(targets)
        copied = hookable_copy(model, self.name, module_ok=self._module_ok, addition=Sum,
                               stack_summands=True)
        modules = dict(copied.named_modules())
        pairs = _merge_pairs(copied.graph.nodes, modules, Linear, BatchNorm)
        _prepare_merges(copied, pairs, self.name)
        convs = [node for node in copied.graph.nodes
                 if node.op == "call_module" and isinstance(modules[node.target], Convolution)]
        gamma_check = _PlainGammaCheck(self.name, [modules[n.target] for n in convs[1:]])
        composite = self._composite(preset, pairs, convs[:1], modules, x)
        x = x.detach().clone()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on full backward hooks
            with Gradient(copied, composite) as attributor:
                if preset == "epsilon_gamma_box":
                    with gamma_check:
                        _, relevance = attributor(x, lambda out: _onehot(out, targets))
                    gamma_check.verify()
                else:
                    _, relevance = attributor(x, lambda out: _onehot(out, targets))
        return relevance.detach().cpu().numpy()

    @staticmethod
    def _composite(preset, pairs, first_conv, modules, x):
        from zennit import composites
        from zennit.canonizers import NamedMergeBatchNorm
        from zennit.layer import Sum
        from zennit.rules import Epsilon, Norm, Pass
        from zennit.types import Activation, AvgPool, BatchNorm, Convolution, Linear, MaxPool

        canonizers = [NamedMergeBatchNorm([((linear,), norm) for linear, norm in pairs])]
        pooling = [(MaxPool, Norm(stabilizer=STABILIZER))]
        options = dict(stabilizer=STABILIZER, layer_map=pooling, canonizers=canonizers)
        if preset in ("attn_lrp", "cp_lrp"):
            # on the suite's networks (no products, softmax or LayerNorm): epsilon on the linear
            # layers and the additions, the identity on activations and unmerged BatchNorms
            merged = tuple(norm for _, norm in pairs)
            layer_map = pooling + [
                (Activation, Pass()), (Sum, Epsilon(epsilon=EPSILON)),
                (AvgPool, Norm(stabilizer=STABILIZER)), (BatchNorm, Pass()),
                (Linear, Epsilon(epsilon=EPSILON))]
            return composites.NameLayerMapComposite(name_map=[(merged, Pass())],
                                                    layer_map=layer_map, canonizers=canonizers)
        if preset == "zero":
            merged = tuple(norm for _, norm in pairs)
            layer_map = pooling + [
                (Activation, Pass()), (Sum, Norm(stabilizer=STABILIZER)),
                (AvgPool, Norm(stabilizer=STABILIZER)), (BatchNorm, Epsilon(epsilon=STABILIZER)),
                (Linear, Epsilon(epsilon=STABILIZER))]
            return composites.NameLayerMapComposite(name_map=[(merged, Pass())],
                                                    layer_map=layer_map, canonizers=canonizers)
        if preset == "epsilon_plus":
            return composites.EpsilonPlus(epsilon=EPSILON, **options)
        if preset == "epsilon_alpha2_beta1":
            return composites.EpsilonAlpha2Beta1(epsilon=EPSILON, **options)
        if preset in ("epsilon_plus_flat", "epsilon_alpha2_beta1_flat"):
            factory = (composites.EpsilonPlusFlat if preset == "epsilon_plus_flat"
                       else composites.EpsilonAlpha2Beta1Flat)
            composite = factory(epsilon=EPSILON, **options)
            composite.first_map = [(Convolution, hook) for _, hook in composite.first_map]
            return composite
        if preset == "epsilon_gamma_box":
            low, high = _box_bounds(first_conv[0] if first_conv else None, modules, x, BatchNorm)
            return composites.EpsilonGammaBox(low=low, high=high, epsilon=EPSILON, gamma=GAMMA,
                                              **options)
        raise AssertionError(preset)  # unreachable: _require_supported


class _PlainGammaCheck:
    """Watches the gamma convs (every conv but the first) during Zennit's pass: where one reads
    a negative input, or a neuron with ``z <= 0`` receives relevance, Zennit's generalised
    gamma rule is not lrp-core's GammaRule, and :meth:`verify` refuses the example. The
    relevance a conv's output receives is the gradient there (Zennit's hooks make it so), and
    the same in both implementations, whose rules above the conv agree."""

    def __init__(self, who: str, convs):
        self.who, self.convs = who, convs
        self.handles, self.problems = [], []

    def __enter__(self):
        for conv in self.convs:
            self.handles.append(conv.register_forward_pre_hook(self._input))
            self.handles.append(conv.register_forward_hook(self._output))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []
        return False

    def _input(self, conv, args):
        if bool((args[0] < 0).any()):
            self.problems.append(f"a conv ({type(conv).__name__}) after the first reads a "
                                 "negative input")

    def _output(self, conv, args, output):
        z = output.detach()

        def relevance(grad):
            if bool((grad[z <= 0] != 0).any()):
                self.problems.append(f"neurons of a conv ({type(conv).__name__}) after the "
                                     "first with z <= 0 receive relevance")

        if output.requires_grad:
            output.register_hook(relevance)

    def verify(self) -> None:
        if self.problems:
            raise UnsupportedModel(
                f"{self.who}: Zennit's Gamma is the generalised gamma rule, which equals "
                f"lrp-core's GammaRule only on a non-negative input and where neurons with "
                f"z <= 0 receive no relevance; here {self.problems[0]}")


def _merge_pairs(nodes, modules, linear_type, norm_type) -> list[tuple[str, str]]:
    """``(linear, norm)`` module names of each BatchNorm that lrp-core fuses, in order: one
    applied right after a Conv or Linear, or after a BatchNorm fused so, whose output nothing
    else reads (lrp-core fuses a chain ``Linear -> BN -> BN`` into the Linear)."""
    pairs, fused_into = [], {}
    for node in nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], norm_type):
            continue
        (source,) = _inputs(node)
        if source.op != "call_module" or len(source.users) != 1:
            continue
        if isinstance(modules[source.target], linear_type):
            fused_into[node] = source.target
        elif source in fused_into:
            fused_into[node] = fused_into[source]
        else:
            continue
        pairs.append((fused_into[node], node.target))
    return pairs


def _prepare_merges(model, pairs, who: str) -> None:
    """The private copy, made to compute the same function in a form Zennit's merge handles:
    each BatchNorm with ``eps = 0`` and its eps in the running variance (so that the merge
    leaves an exact identity; see :class:`Zennit`) and explicit ``weight`` and ``bias`` where
    it has none; each layer that takes a BatchNorm with an explicit zero bias where it has none
    (Zennit's merge of a second BatchNorm into one layer fails on restoring a ``bias=None``)."""
    import torch
    from torch import nn

    for linear, _ in pairs:
        module = model.get_submodule(linear)
        if module.bias is None:
            channels = module.weight.shape[1] * module.groups \
                if isinstance(module, nn.modules.conv._ConvTransposeNd) else module.weight.shape[0]
            module.bias = nn.Parameter(torch.zeros(channels, dtype=module.weight.dtype,
                                                   device=module.weight.device))
    for name, module in model.named_modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        if module.running_var is None or module.running_mean is None:
            raise UnsupportedModel(f"{who}: the BatchNorm {name} has no running statistics")
        with torch.no_grad():
            module.running_var.add_(module.eps)
        module.eps = 0.0
        if module.weight is None:
            module.weight = nn.Parameter(torch.ones_like(module.running_var))
            module.bias = nn.Parameter(torch.zeros_like(module.running_var))
            module.affine = True


def _box_bounds(first_conv, modules, x, norm_type):
    """ZBox bounds for Zennit: ``[BOX_LOW, BOX_HIGH]``, mapped through the BatchNorms (and
    no-ops) between the input and the first conv as lrp-core maps them through the ``Affine``
    of an unfused BatchNorm: ``[min(ls + t, hs + t), max(ls + t, hs + t)]`` per channel."""
    import torch
    from torch import nn

    low = torch.tensor(BOX_LOW, dtype=x.dtype, device=x.device)
    high = torch.tensor(BOX_HIGH, dtype=x.dtype, device=x.device)
    if first_conv is None:
        return low, high
    norms = []
    (node,) = _inputs(first_conv)
    while node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, norm_type):
            norms.append(module)
        elif not isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd)):
            break
        (node,) = _inputs(node)
    if node.op != "placeholder" or not norms:
        return low, high
    shape = (1, -1) + (1,) * (x.dim() - 2)
    for norm in reversed(norms):
        with torch.no_grad():
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            shift = norm.bias - norm.running_mean * scale
            a = low * scale.reshape(shape) + shift.reshape(shape)
            b = high * scale.reshape(shape) + shift.reshape(shape)
        low, high = torch.minimum(a, b), torch.maximum(a, b)
    return low, high


# -- Captum --------------------------------------------------------------------------------------

class Captum:
    """Captum 0.9's ``LRP`` with ``attribute(x, target=targets)``. Captum starts from the
    target's logit and scales the result by it (its docstring: relevance "normalized by the
    output score", then multiplied back); the adapter divides by the logit, so the target's
    relevance is 1 (a logit of exactly 0 is refused). Presets:

    - ``zero``: ``EpsilonRule(1e-9)`` (Captum's default; LRP-0 with lrp-core's stabiliser, sign
      of 0 taken as +1 as lrp-core does) on Conv, Linear, BatchNorm, pooling and additions;
      ReLU and Tanh pass relevance on (Captum's handling of them); other elementwise
      activations take ``IdentityRule`` (pass), Flatten ``EpsilonRule(tiny)`` (a pass:
      ``a / (a + tiny) = 1``; ``IdentityRule`` needs equal shapes). A value read both by a
      layer and by a function or pass-through activation is refused (see
      :meth:`_require_one_kind_of_reader`). Captum does not merge a BatchNorm into the Conv or
      Linear before it (it has no canonizer): LRP-0 on the two equals LRP-0 on the merged layer only
      up to the stabiliser, a relative ``1e-9 / |z|`` per neuron of the layer's output ``z``
      (measured up to 1.5e-6 of the largest relevance on the suite's networks), so a model
      with a BatchNorm that lrp-core fuses is refused; other BatchNorms (lrp-core's ``Affine``
      under ZeroRule) are Captum's epsilon rule exactly.

    Not supported, because Captum's rules are other rules than lrp-core's:
    ``epsilon_plus`` (Captum's ``Alpha1_Beta0_Rule`` clamps the weights, ``W⁺a + b``: it keeps
    the whole bias where z⁺ takes ``b⁺``, and gives ``W⁺a⁻`` to negative inputs where z⁺ takes
    ``W⁻a⁻``; the same on ReLU inputs with zero biases only), ``epsilon_gamma_box`` (its
    ``GammaRule`` leaves the bias as it is, where lrp-core's takes ``b + γb⁺``, and Captum has
    no z-box rule), the alpha2-beta1 presets (no alpha-beta rule but α=1, β=0) and the flat
    presets (no flat rule).
    """

    name = "captum"

    def __init__(self):
        try:
            import captum.attr  # noqa: F401
        except ImportError as error:
            raise ImplementationUnavailable(f"{self.name} needs captum: {error}") from error
        self.supports = {"zero"}

    @staticmethod
    def _rules():
        """Module types -> the rule factory (None: Captum's own pass-through handling)."""
        import torch
        from captum.attr._core.lrp import SUPPORTED_NON_LINEAR_LAYERS
        from captum.attr._utils.custom_modules import Addition_Module
        from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule
        from torch import nn

        def lrp0():
            return EpsilonRule(epsilon=STABILIZER)

        def reshape():
            return EpsilonRule(epsilon=float(torch.finfo(torch.float64).tiny))

        weighted = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm,
                    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
                    Addition_Module)
        passing = (nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                   nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softsign)
        return (tuple(SUPPORTED_NON_LINEAR_LAYERS), ((weighted, lrp0), ((nn.Flatten,
                nn.Unflatten), reshape), (passing, IdentityRule)))

    def _module_ok(self, module) -> bool:
        own, rules = self._rules()
        return type(module) in own or any(isinstance(module, types) for types, _ in rules)

    def _require_one_kind_of_reader(self, model, modules) -> None:
        """Between Captum's layers the gradient is relevance ``R`` on some edges and ``R / z``
        on others: a layer with an epsilon-type rule receives ``Wᵀ(R / z)`` at its input,
        and Captum multiplies the whole gradient of that input by it; a function outside
        modules (a concatenation, a reshape), Captum's pass-through ReLU, Tanh and Dropout,
        and ``IdentityRule`` hand relevance itself back. A value read by both kinds gets a sum
        of the two kinds, multiplied by the value: a wrong relevance (measured: 0.94 of the
        largest, for a ReLU output read by a conv and by ``torch.cat``). Refused."""
        from captum.attr._utils.lrp_rules import IdentityRule

        def kind(reader):
            rule = getattr(modules[reader.target], "rule", None) \
                if reader.op == "call_module" else None
            if isinstance(rule, IdentityRule):
                return "identity"  # its hook replaces the whole gradient of its input
            return "gradient" if rule is not None else "relevance"

        for node in model.graph.nodes:
            readers = [r for r in node.users if r.op != "output"]
            kinds = [kind(r) for r in readers]
            if len(set(kinds)) > 1 or (len(readers) > 1 and "identity" in kinds):
                raise UnsupportedModel(
                    f"{self.name}: {node.name} is read by {', '.join(r.name for r in readers)}; "
                    "Captum's relevance is wrong where a value is read by a layer and by a "
                    "function or a pass-through activation")

    def explain(self, model, x, preset: str, targets: list[int]) -> np.ndarray:
        import torch
        from captum.attr import LRP
        from captum.attr._utils.custom_modules import Addition_Module
        from torch import nn

        _require_supported(self, preset)
        targets = _targets(targets)
        copied = hookable_copy(model, self.name, module_ok=self._module_ok,
                               addition=Addition_Module)
        modules = dict(copied.named_modules())
        fused = _merge_pairs(copied.graph.nodes, modules, (nn.Linear, nn.Conv1d, nn.Conv2d,
                             nn.Conv3d), nn.modules.batchnorm._BatchNorm)
        if fused:
            raise UnsupportedModel(
                f"{self.name}: Captum does not merge a BatchNorm into the layer before it, and "
                "LRP-0 on the two equals LRP-0 on the merged layer only up to the stabiliser, a "
                f"relative 1e-9/|z| at the BatchNorm's input (here: {fused[0][1]} after "
                f"{fused[0][0]})")
        own, rules = self._rules()
        for module in copied.modules():
            if hasattr(module, "inplace"):
                module.inplace = False  # Captum's hooks cannot follow an in-place ReLU
            if module is copied or type(module) in own:
                continue
            module.rule = next(factory() for types, factory in rules
                               if isinstance(module, types))
        self._require_one_kind_of_reader(copied, modules)
        x = x.detach().clone()
        with torch.no_grad():
            output = copied(x)
        logits = output.reshape(len(output), -1)[torch.arange(len(targets)),
                                                 torch.tensor(targets)]
        if bool((logits == 0).any()):
            raise UnsupportedModel(f"{self.name}: a target's logit is 0, and Captum's relevance "
                                   "is scaled by it")
        target = [tuple(int(i) for i in np.unravel_index(t, output.shape[1:])) for t in targets]
        if output.dim() == 2:
            target = targets
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on full backward hooks
            relevance = LRP(copied).attribute(x, target=target)
        shape = (-1,) + (1,) * (relevance.dim() - 1)
        return (relevance / logits.reshape(shape)).detach().cpu().numpy()


class ZennitDefaults:
    """Zennit 0.5 as its documentation uses it: a composite with ``epsilon=1e-6`` (and the
    suite's box bounds, ``gamma=0.25``), ``canonizers=[SequentialMergeBatchNorm()]`` and every
    other option at Zennit's default (stabiliser 1e-6, max pooling as the gradient, the "flat"
    rule on the first Conv *or* Linear), the ``Gradient`` attributor with the output relevance
    one-hot at the targets, on a deep copy of the model (Zennit's canonizers change the model
    while they are applied). Nothing is rewritten: additions, concatenations and a module used
    twice reach Zennit as the user wrote them. ``zero`` is not offered: Zennit has no LRP-0
    composite. The suite's report on this adapter is what a user of Zennit gets; the ``zennit``
    adapter is Zennit configured to lrp-core's conventions."""

    name = "zennit-defaults"
    _COMPOSITES = {"epsilon_plus": "EpsilonPlus", "epsilon_plus_flat": "EpsilonPlusFlat",
                   "epsilon_alpha2_beta1": "EpsilonAlpha2Beta1",
                   "epsilon_alpha2_beta1_flat": "EpsilonAlpha2Beta1Flat",
                   "epsilon_gamma_box": "EpsilonGammaBox"}

    def __init__(self):
        try:
            import zennit  # noqa: F401
        except ImportError as error:
            raise ImplementationUnavailable(f"{self.name} needs zennit: {error}") from error
        self.supports = set(self._COMPOSITES)

    def explain(self, model, x, preset: str, targets: list[int]) -> np.ndarray:
        import torch
        from zennit import composites
        from zennit.attribution import Gradient
        from zennit.canonizers import SequentialMergeBatchNorm

        _require_supported(self, preset)
        targets = _targets(targets)
        copied = copy.deepcopy(model)
        x = x.detach().clone()
        factory = getattr(composites, self._COMPOSITES[preset])
        options = dict(epsilon=EPSILON, canonizers=[SequentialMergeBatchNorm()])
        if preset == "epsilon_gamma_box":
            options.update(low=torch.full_like(x, BOX_LOW), high=torch.full_like(x, BOX_HIGH),
                           gamma=GAMMA)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on full backward hooks
            with Gradient(copied, factory(**options)) as attributor:
                _, relevance = attributor(x, lambda out: _onehot(out, targets))
        return relevance.detach().cpu().numpy()


# -- the loader ----------------------------------------------------------------------------------

#: built-in name -> factory (a class called with no arguments)
BUILTIN_IMPLEMENTATIONS = {
    "lrp_core-numpy": LrpCoreNumPy,
    "lrp_core-torch": LrpCoreTorch,
    "lrp_core-torch-cuda": LrpCoreTorchCuda,
    "lrp_core-array-api-strict": LrpCoreArrayApiStrict,
    "lrp_core-cupy": LrpCoreCuPy,
    "zennit": Zennit,
    "zennit-defaults": ZennitDefaults,
    "captum": Captum,
}


def available_implementations() -> list[str]:
    """The built-in names whose dependencies import here (and, for CuPy, find a CUDA device)."""
    names = []
    for name, factory in BUILTIN_IMPLEMENTATIONS.items():
        try:
            factory()
        except ImplementationUnavailable:
            continue
        names.append(name)
    return names


def load_implementation(spec: str) -> Implementation:
    """A built-in name (:data:`BUILTIN_IMPLEMENTATIONS`), or ``module:Class``: the module is
    imported from ``sys.path`` and the class instantiated with no arguments (an attribute that
    is already an instance is used as it is). Raises ``ValueError`` for an unknown name, a
    module that does not import (with its error), a missing attribute or an object that does
    not follow the protocol, and :class:`ImplementationUnavailable` for a built-in whose
    dependencies are missing."""
    if spec in BUILTIN_IMPLEMENTATIONS:
        return BUILTIN_IMPLEMENTATIONS[spec]()
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"unknown implementation {spec!r}: give a built-in "
                         f"({', '.join(BUILTIN_IMPLEMENTATIONS)}) or module:Class")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is reported the same way
        raise ValueError(f"cannot import {module_name!r} for {spec!r}: "
                         f"{type(error).__name__}: {error}") from error
    try:
        obj = operator.attrgetter(attribute)(module)
    except AttributeError as error:
        raise ValueError(f"{spec!r}: module {module_name!r} has no attribute {attribute!r}") \
            from error
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"{spec!r}: {attribute}() failed: {type(error).__name__}: {error}") \
                from error
    missing = [m for m in ("name", "supports", "explain") if not hasattr(obj, m)]
    if missing or not callable(obj.explain):
        raise ValueError(f"{spec!r} does not follow the implementation protocol "
                         f"(name, supports, explain): missing {', '.join(missing) or 'explain()'}")
    unknown = sorted(set(obj.supports) - set(PRESET_NAMES))
    if unknown:
        raise ValueError(f"{spec!r} supports unknown presets {unknown}; the presets are "
                         f"{', '.join(PRESET_NAMES)}")
    return obj
