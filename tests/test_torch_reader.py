"""``lrp.from_torch``: hand-written modules with functional calls, a reused module and in-place
operations; every supported module and call; names, errors and their locations; inference
semantics in training mode; the user's module untouched; the shared LeNet-5 with the seed's rules;
backend swapping, dtypes and devices of the relevance."""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import lrp_core as lrp  # noqa: E402
from lrp_core.backends.readers.torch import UntraceableModelError  # noqa: E402
from lrp_core.demo import example_rules  # noqa: E402  (the custom-rule example's 8 rules)

from helpers.data import mnist_test_images  # noqa: E402
from helpers.torch_models import (  # noqa: E402
    assert_relevance_close,
    assert_untouched,
    gradient_times_input,
    load_lenet5,
    seeded,
    snapshot,
)

EXACT_LRP0 = lrp.EpsilonRule(1e-100)  # LRP-0 with a negligible stabiliser: gradient x input exactly


def check_forward(module: nn.Module, x, graph=None, rtol=1e-12):
    """The graph (and its canonized form) computes the module's output (in eval mode)."""
    graph = lrp.from_torch(module) if graph is None else graph
    reference = copy.deepcopy(module).eval()
    with torch.no_grad():
        expected = reference(x)
    for g in (graph, lrp.canonize(graph)):
        out = g.forward(x)
        torch.testing.assert_close(out, expected, rtol=rtol,
                                   atol=rtol * float(expected.abs().max()))
    return graph


# ---------------------------------------------------------------------------------------------
# hand-written models


class FunctionalResidual(nn.Module):
    """Functional activations, a module used twice, in-place ops, ``+=`` and a flattening view."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        y = self.bn(self.conv2(x))
        y.relu_()                       # in place, result discarded
        y = self.conv2(y)               # the same module again
        y += x                          # a residual addition
        y = torch.relu(y)
        y = F.max_pool2d(y, 2)
        y = y.view(y.size(0), -1)
        return self.fc(y)


class Branches(nn.Module):
    """Concatenation, torch.add, in-place F.relu, pooling calls, a global mean and reshapes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True))
        self.left = nn.Conv2d(6, 4, 1)
        self.right = nn.Conv2d(6, 4, 3, padding=1)
        self.head = nn.Linear(8 + 8 * 4 * 4, 5)

    def forward(self, x):
        x = self.stem(x)
        a = F.relu(self.left(x), inplace=True)
        b = self.right(x).relu()
        c = torch.cat([a, b], dim=1)
        c = torch.add(c, F.avg_pool2d(c, 3, stride=1, padding=1))
        pooled = c.mean(dim=(2, 3))                        # global average pooling
        d = F.adaptive_avg_pool2d(c, 4)
        d = F.dropout(d, 0.5, training=self.training)
        d = d.reshape(d.shape[0], -1)
        return self.head(torch.cat((pooled, d), 1))


class InplaceAlias(nn.Module):
    """An in-place ReLU mutates a tensor that is used again: eager computes 2 * relu(x)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 6)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc1(x)
        r = self.act(h)                 # h is now relu(h) too
        return self.fc2(h + r)


@pytest.mark.parametrize("make, shape", [(FunctionalResidual, (3, 3, 8, 8)),
                                         (Branches, (2, 3, 8, 8)),
                                         (InplaceAlias, (4, 6))])
def test_hand_written_models(make, shape):
    model = seeded(make()).eval()
    before = snapshot(model)
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    check_forward(model, x)
    expl = lrp.LRP(model, EXACT_LRP0, normalize_output_relevance=False)(x)
    expected = gradient_times_input(model, x, expl.output_selection)
    assert_relevance_close(expl.val, expected, rtol=1e-8)
    numpy_expl = lrp.LRP(model, EXACT_LRP0, normalize_output_relevance=False)(x.numpy())
    assert_relevance_close(numpy_expl.val, expl.val, rtol=1e-10)
    for preset in (lrp.EpsilonPlusFlat(), lrp.EpsilonAlpha2Beta1(), lrp.EpsilonGammaBox(0.0, 1.0)):
        assert bool(torch.isfinite(lrp.LRP(model, preset)(x).val).all())
    assert_untouched(model, before)


def test_a_module_called_twice_is_two_nodes_sharing_one_layer():
    graph = lrp.from_torch(seeded(FunctionalResidual()))
    names = [node.name for node in graph.nodes]
    assert "conv2" in names and "conv2@1" in names
    first, second = (graph.nodes[names.index(n)] for n in ("conv2", "conv2@1"))
    assert first.layer is second.layer
    assert first.inputs != second.inputs


def test_node_names_are_qualified_module_names():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(),
                          nn.Sequential(nn.Flatten(), nn.Linear(8, 3)))
    graph = lrp.from_torch(model)
    assert [node.name for node in graph.nodes] == ["0", "1", "2.0", "2.1"]
    analyzer = lrp.LRP(model)
    assert "2.1: Dense(8 => 3)" in repr(analyzer)


def test_in_place_operations_follow_eager_semantics():
    model = seeded(InplaceAlias()).eval()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    graph = check_forward(model, x)
    # h + r reads the rebound h: an Add of the ReLU's output with itself
    add = next(node for node in graph.nodes if isinstance(node.layer, lrp.Add))
    assert add.inputs[0] == add.inputs[1]


def test_weights_are_detached_views_of_the_parameters():
    model = seeded(FunctionalResidual())
    graph = lrp.from_torch(model)
    conv = graph.nodes[0].layer
    assert isinstance(conv.weight, torch.Tensor) and not conv.weight.requires_grad
    assert conv.weight.data_ptr() == model.conv1.weight.data_ptr()
    assert conv.weight.device == model.conv1.weight.device


# ---------------------------------------------------------------------------------------------
# every supported module and call


MODULE_CASES = {
    "conv1d-pools": (lambda: nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1, dilation=1), nn.LeakyReLU(0.1),
        nn.MaxPool1d(2, ceil_mode=True),
        nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False), nn.AdaptiveAvgPool1d(3),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(12, 4)), (2, 2, 11)),
    "conv3d": (lambda: nn.Sequential(
        nn.Conv3d(1, 3, 3, padding=(1, 0, 1), stride=(1, 2, 1)), nn.BatchNorm3d(3), nn.ELU(0.7),
        nn.MaxPool3d(2, padding=1), nn.AvgPool3d(2, ceil_mode=True), nn.AdaptiveMaxPool3d(1),
        nn.Flatten(), nn.Linear(3, 2)), (2, 1, 6, 7, 6)),
    "transposed": (lambda: nn.Sequential(
        nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(3),
        nn.ReLU6(),
        nn.Identity(),
        nn.AdaptiveMaxPool2d((2, 3)), nn.Flatten(), nn.Unflatten(1, (3, 6)),
        nn.ConvTranspose1d(3, 2, 2, stride=2), nn.Flatten(), nn.Linear(24, 3)), (2, 2, 5, 5)),
    "transposed3d": (lambda: nn.Sequential(
        nn.ConvTranspose3d(1, 2, 2, stride=2, groups=1), nn.SiLU(), nn.AdaptiveAvgPool3d((1, 2, 1)),
        nn.Flatten(), nn.Linear(4, 2)), (2, 1, 3, 3, 3)),
    "norms-activations": (lambda: nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8), nn.GELU(), nn.Linear(8, 8), nn.LayerNorm(8), nn.Tanh(),
        nn.Linear(8, 6), nn.GELU(approximate="tanh"), nn.AlphaDropout(0.1), nn.Linear(6, 6),
        nn.Sigmoid(),
        nn.Linear(6, 4), nn.Hardtanh(0.0, 6.0), nn.Linear(4, 3)), (4, 5)),
    "grouped-dilated": (lambda: nn.Sequential(
        nn.Conv2d(4, 8, 3, padding="same", dilation=2, groups=2), nn.ReLU(), nn.Dropout2d(0.2),
        nn.Conv2d(8, 8, 2, padding="valid", groups=8), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, dilation=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 3)), (2, 4, 9, 9)),
}


@pytest.mark.parametrize("name", list(MODULE_CASES))
def test_supported_modules(name):
    make, shape = MODULE_CASES[name]
    model = seeded(make()).eval()
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    check_forward(model, x)
    expl = lrp.LRP(model)(x)
    assert expl.val.shape == x.shape and bool(torch.isfinite(expl.val).all())
    assert_relevance_close(lrp.LRP(model)(x.numpy()).val, expl.val, rtol=1e-10)


class FunctionalZoo(nn.Module):
    """The functional forms and tensor methods of the issue's list."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 2, 3, 3))
        self.b = nn.Parameter(torch.randn(4))
        self.bn = nn.BatchNorm2d(4)
        self.lin = nn.Linear(16, 5)

    def forward(self, x):
        x = F.conv2d(x, self.w, self.b, padding=1)
        x = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                         False, 0.1, self.bn.eps)
        x = F.leaky_relu(x, 0.2)
        x = F.max_pool2d(x, 2, 2)
        x = F.elu(x)
        y = F.avg_pool2d(x, 2, stride=1, padding=1)
        y = torch.sigmoid(y) + torch.tanh(y)
        y = F.adaptive_max_pool2d(y, 2)
        y = F.silu(y)
        y = F.relu6(y)
        y = F.gelu(y)
        y = torch.flatten(y, 1)
        y = F.linear(y, self.lin.weight, self.lin.bias)
        return F.softmax(y, dim=1)


def test_functional_calls_and_softmax():
    model = seeded(FunctionalZoo()).eval()
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    graph = check_forward(model, x)
    with pytest.raises(lrp.ModelCheckError, match="strip_softmax"):
        lrp.LRP(model)
    expl = lrp.LRP(lrp.strip_softmax(graph))(x)
    assert bool(torch.isfinite(expl.val).all())


class Reshapes(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(2, 4, 3)
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        x = self.conv(x)                                    # (N, 4, 4, 4)
        how = self.how
        if how == "view-size0":
            x = x.view(x.size(0), -1)
        elif how == "reshape-shape0":
            x = x.reshape(x.shape[0], -1)
        elif how == "view-minus1":
            x = x.view(-1, 64)
        elif how == "view-keep-channels":
            x = x.view(x.size(0), x.size(1), -1).flatten(1)
        elif how == "torch-reshape":
            x = torch.reshape(x, (x.shape[0], 16, 4)).contiguous().view(x.size(0), 64)
        elif how == "flatten-method":
            x = x.flatten(1)
        elif how == "size-tuple":
            x = x.view(x.size()).view(x.size(0), 64)
        return self.fc(x)


@pytest.mark.parametrize("how", ["view-size0", "reshape-shape0", "view-minus1",
                                 "view-keep-channels", "torch-reshape", "flatten-method",
                                 "size-tuple"])
def test_reshapes_with_the_batch_size(how):
    model = seeded(Reshapes(how)).eval()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    check_forward(model, x)


class MeanPool(nn.Module):
    def __init__(self, dims, keepdim=False):
        super().__init__()
        self.dims, self.keepdim = dims, keepdim
        self.conv = nn.Conv2d(2, 3, 3)

    def forward(self, x):
        y = self.conv(x).mean(dim=self.dims, keepdim=self.keepdim)
        return y.flatten(1)


@pytest.mark.parametrize("dims, keepdim", [((2, 3), False), ((-1, -2), False), ([2, 3], True)])
def test_mean_over_spatial_axes_is_global_average_pooling(dims, keepdim):
    model = seeded(MeanPool(dims, keepdim)).eval()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    graph = check_forward(model, x)
    assert any(isinstance(layer, lrp.GlobalAvgPool) for layer in graph)


# ---------------------------------------------------------------------------------------------
# ranks: a call that depends on the input's rank is translated exactly where the reader knows
# the rank, and refused (naming the call and its line) where it does not; never guessed


class MeanOfTheInput(nn.Module):
    """``x.mean((2, 3))`` on the model input, whose rank the reader does not know."""

    def __init__(self, features):
        super().__init__()
        self.fc = nn.Linear(features, 2)

    def forward(self, x):
        y = x.mean((2, 3))  # a rank-unknown mean
        return self.fc(y.flatten(1))


@pytest.mark.parametrize("shape, features", [((2, 3, 4, 5, 6), 18), ((2, 3, 4, 5), 3)])
def test_a_mean_over_axes_of_a_tensor_of_unknown_rank_is_refused(shape, features):
    model = seeded(MeanOfTheInput(features)).eval()
    model(torch.randn(shape, dtype=torch.float64))  # a valid model for this input
    with pytest.raises(lrp.UnsupportedOperatorError) as info:
        lrp.from_torch(model)
    message = str(info.value)
    assert "'mean'" in message and "Tensor.mean" in message and "rank" in message
    assert f"{os.path.basename(__file__)}:" in message and "y = x.mean((2, 3))" in message


class MeanOf3d(nn.Module):
    """A mean over some axes of a rank-5 tensor (known after the Conv3d)."""

    def __init__(self, dims, keepdim=False):
        super().__init__()
        self.dims, self.keepdim = dims, keepdim
        self.conv = nn.Conv3d(2, 3, 2)

    def forward(self, x):
        return torch.mean(self.conv(x), self.dims, keepdim=self.keepdim).flatten(1)


def test_a_mean_over_two_of_three_spatial_axes_is_refused():
    with pytest.raises(lrp.UnsupportedOperatorError, match=r"torch\.mean.*rank-5"):
        lrp.from_torch(MeanOf3d((2, 3)))


@pytest.mark.parametrize("dims, keepdim", [((2, 3, 4), False), ((-1, -3, -2), True)])
def test_a_mean_over_all_three_spatial_axes_is_global_average_pooling(dims, keepdim):
    model = seeded(MeanOf3d(dims, keepdim)).eval()
    x = torch.randn(2, 2, 4, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    graph = check_forward(model, x)
    assert any(isinstance(layer, lrp.GlobalAvgPool) for layer in graph)


class SqueezeView(nn.Module):
    """``x.view(x.size(0), x.size(1))`` of a (N, C, 1, 1) tensor: a flatten, not the identity."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.pool(self.conv(x))
        return self.fc(x.view(x.size(0), x.size(1)))


def test_a_view_keeping_leading_axes_drops_the_trailing_ones():
    model = seeded(SqueezeView()).eval()
    check_forward(model, torch.randn(2, 2, 6, 6, dtype=torch.float64))


class ImplicitSoftmax(nn.Module):
    """``nn.Softmax()`` without ``dim``: torch picks the axis from the rank (0 for rank 3)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv
        self.softmax = nn.Softmax()

    def forward(self, x):
        return self.softmax(self.conv(x))


def test_a_softmax_without_dim_is_read_only_where_the_rank_fixes_the_axis():
    model = seeded(ImplicitSoftmax(nn.Conv2d(2, 3, 3))).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's "implicit dimension choice"
        graph = check_forward(model, torch.randn(2, 2, 5, 5, dtype=torch.float64))
    assert any(isinstance(layer, lrp.Softmax) and layer.dim == 1 for layer in graph)
    with pytest.raises(lrp.UnsupportedOperatorError, match="batch axis"):
        lrp.from_torch(ImplicitSoftmax(nn.Conv1d(2, 3, 3)))  # rank 3: torch's axis is the batch
    with pytest.raises(lrp.UnsupportedOperatorError, match="rank"):
        lrp.from_torch(nn.Sequential(nn.Linear(4, 3), nn.Softmax()))  # the rank is not known


@pytest.mark.parametrize("forward", [
    lambda self, x: self.fc(x.flatten(-2)),             # flattens the batch axis of a 2-d input
    lambda self, x: self.fc(torch.flatten(x, -3, -2)),  # start_dim counts from an unknown end
])
def test_a_flatten_from_a_negative_axis_of_unknown_rank_is_refused(forward):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

    Model.forward = forward
    with pytest.raises(lrp.UnsupportedOperatorError, match="rank"):
        lrp.from_torch(Model())


# ---------------------------------------------------------------------------------------------
# errors


class UsesSine(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.fc(x)
        return torch.sin(y)  # no translation


class DeadCode(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        unused = torch.sin(x) - 3  # noqa: F841 - untranslatable, but nothing depends on it
        return self.fc(x)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return self.fc(-x)


def test_unsupported_call_names_node_target_and_line():
    model = UsesSine()
    before = snapshot(model)
    with pytest.raises(lrp.UnsupportedOperatorError) as info:
        lrp.LRP(model)
    message = str(info.value)
    assert "'sin'" in message and "torch.sin" in message
    assert f"{os.path.basename(__file__)}:" in message and "return torch.sin(y)" in message
    assert_untouched(model, before)


def test_unsupported_module_suggests_leaf_modules():
    model = nn.Sequential(nn.Linear(4, 4), nn.Softshrink(), nn.Linear(4, 2))
    with pytest.raises(lrp.UnsupportedOperatorError, match=r"'1' \(Softshrink\).*leaf_modules"):
        lrp.from_torch(model)


def test_leaf_modules_translate_a_part_by_hand():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.relu(self.fc(x)) if x.sum() > 0 else self.fc(x)  # untraceable

    model = seeded(nn.Sequential(Block(), nn.Linear(4, 2))).eval()
    with pytest.raises(UntraceableModelError):
        lrp.from_torch(model)
    graph = lrp.from_torch(model, leaf_modules={
        Block: lambda m: lrp.Dense(m.fc.weight.detach(), m.fc.bias.detach(), activation=lrp.relu)})
    x = torch.rand(3, 4, dtype=torch.float64) + 0.1
    check_forward(model, x, graph)


def test_dead_code_is_not_translated():
    model = seeded(DeadCode()).eval()
    check_forward(model, torch.randn(2, 4, dtype=torch.float64))


def test_untraceable_model_says_so_and_what_to_do():
    model = DataDependent()
    before = snapshot(model)
    with pytest.raises(lrp.LRPError) as info:
        lrp.LRP(model)
    assert isinstance(info.value, UntraceableModelError)
    message = str(info.value)
    assert "torch.fx cannot trace DataDependent" in message
    assert "leaf_modules" in message and "ONNX" in message and "by hand" in message
    assert_untouched(model, before)


@pytest.mark.parametrize("forward, match", [
    (lambda self, x: self.fc(x).view(1, -1), "fixes the batch size"),
    (lambda self, x: self.fc(x).mean(1), "spatial axes"),
    (lambda self, x: torch.flatten(self.fc(x)), "batch axis"),
    (lambda self, x: (self.fc(x), x), "one output tensor"),
    (lambda self, x: self.fc(x) ** 2, "operator.pow"),
    (lambda self, x: self.fc(x)[0], "batch axis"),
    (lambda self, x: self.fc(x) / self.fc(x), "dividing by a tensor"),
])
def test_clear_errors(forward, match):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

    Model.forward = forward
    with pytest.raises(lrp.UnsupportedOperatorError, match=match):
        lrp.from_torch(Model())


def test_returning_the_input_is_an_error():
    class Passes(nn.Module):
        def forward(self, x):
            return x.contiguous()

    with pytest.raises(lrp.LRPError, match="nothing to explain"):
        lrp.from_torch(Passes())


def test_a_leaf_module_as_the_whole_model():
    model = seeded(nn.Linear(3, 2))
    graph = check_forward(model, torch.randn(4, 3, dtype=torch.float64))
    assert len(graph) == 1 and isinstance(graph[0], lrp.Dense)


# ---------------------------------------------------------------------------------------------
# the user's module


class TrainingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = self.drop(torch.relu(self.bn(self.conv(x))))
        return self.fc(F.dropout(x.flatten(1), 0.3, self.training))


def test_training_mode_is_read_with_inference_semantics_and_left_as_is():
    model = seeded(TrainingModel()).train()
    before = snapshot(model)
    x = torch.rand(2, 2, 6, 6, dtype=torch.float64)
    check_forward(model, x)  # compares with an eval-mode copy
    expl = lrp.LRP(model, EXACT_LRP0, normalize_output_relevance=False)(x)
    evaluated = copy.deepcopy(model).eval()
    assert_relevance_close(expl.val, gradient_times_input(evaluated, x, expl.output_selection),
                           rtol=1e-8)
    assert model.training and model.bn.training and model.drop.training
    assert_untouched(model, before)


def test_module_untouched_when_the_analysis_raises():
    model = seeded(TrainingModel())
    before = snapshot(model)
    analyzer = lrp.LRP(model, lrp.EpsilonPlusFlat())
    with pytest.raises(ValueError):
        analyzer(torch.rand(2, 3, 6, 6, dtype=torch.float64))  # wrong number of channels
    with pytest.raises(lrp.LRPCompatibilityError):
        lrp.LRP(model, lrp.LayerNormRule())
    assert_untouched(model, before)


def test_hooks_are_neither_run_nor_modified():
    model = seeded(TrainingModel()).eval()
    calls = []
    model.conv.register_forward_hook(lambda m, i, o: calls.append("conv"))
    model.register_forward_pre_hook(lambda m, i: calls.append("root"))
    before = snapshot(model)
    with pytest.warns(UserWarning, match="forward hooks"):
        analyzer = lrp.LRP(model)
    analyzer(torch.rand(2, 2, 6, 6, dtype=torch.float64))
    assert calls == []
    assert_untouched(model, before)


def test_explanations_run_without_autograd():
    model = seeded(TrainingModel()).eval()
    x = torch.rand(2, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    expl = lrp.LRP(model, lrp.EpsilonPlusFlat())(x)
    assert not expl.val.requires_grad and expl.val.grad_fn is None
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# dtypes, devices, backend swapping


def test_relevance_keeps_the_input_dtype():
    model = seeded(TrainingModel()).float().eval()
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = torch.rand(2, 2, 6, 6, dtype=dtype)
        expl = lrp.LRP(model, lrp.EpsilonPlusFlat())(x)
        assert (expl.val.dtype == dtype and expl.val.device == x.device
                and expl.output.dtype == dtype)


def test_an_analyzer_from_a_torch_model_explains_numpy_input():
    model = seeded(FunctionalResidual()).eval()
    analyzer = lrp.LRP(model, lrp.EpsilonGammaBox(0.0, 1.0))
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    a = analyzer(x)
    b = analyzer(x.numpy())
    c = analyzer(x.numpy())
    assert isinstance(b.val, np.ndarray) and b.val.dtype == np.float64
    assert_relevance_close(b.val, a.val, rtol=1e-10)
    np.testing.assert_array_equal(b.val, c.val)
    numpy_entries = [key for key in analyzer._cache if key[0] == "numpy"]
    assert len(numpy_entries) == 1  # the weights were converted once


# ---------------------------------------------------------------------------------------------
# the shared LeNet-5 (a state_dict; the architecture from ../shared/data/README.md)


class MyGammaRule(lrp.LRPRule):
    def modify_parameters(self, param):
        return param + 0.25 * lrp.relu(param)


@pytest.fixture(scope="module")
def lenet5():
    return load_lenet5()


def test_shared_lenet5_with_the_custom_rule_example(lenet5):
    images, labels = mnist_test_images(8)
    x = torch.from_numpy(images)
    before = snapshot(lenet5)
    with torch.no_grad():
        logits = lenet5(x)
    assert (logits.argmax(1).numpy() == labels).mean() >= 0.75
    custom = lrp.LRP(lenet5, example_rules(MyGammaRule()))
    builtin = lrp.LRP(lenet5, example_rules(lrp.GammaRule()))
    assert len(custom.model) == 8
    a, b = custom(x), builtin(x)
    assert a.val.dtype == torch.float32
    assert torch.equal(a.val, b.val)
    assert a.output_selection == logits.argmax(1).tolist()
    torch.testing.assert_close(a.output, logits)
    # float64 and NumPy give the same relevance
    c = builtin(x.double())
    assert_relevance_close(a.val.double(), c.val, rtol=1e-4)
    assert_relevance_close(builtin(x.double().numpy()).val, c.val, rtol=1e-10)
    assert_untouched(lenet5, before)


def test_shared_lenet5_lrp0_equals_gradient_times_input(lenet5):
    images, _ = mnist_test_images(4)
    model = copy.deepcopy(lenet5).double()
    x = torch.from_numpy(images).double()
    expl = lrp.LRP(model, EXACT_LRP0, normalize_output_relevance=False)(x)
    assert_relevance_close(expl.val, gradient_times_input(model, x, expl.output_selection),
                           rtol=1e-8)


def test_no_warnings_on_plain_models():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrp.LRP(seeded(Branches()))(torch.rand(1, 3, 8, 8, dtype=torch.float64))
