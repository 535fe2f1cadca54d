"""The conformance suite's built-in implementations (``lrp_conformance.implementations``): each
gives a well-formed answer, lrp-core's NumPy, torch and array-api-strict paths agree to 1e-12,
Zennit and Captum agree with lrp-core where their adapters claim a preset (and refuse, as
``NotImplementedError``, the models they cannot explain faithfully), no implementation leaves a
trace on the user's model, and the loader finds built-ins and ``module:Class`` alike."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from lrp_conformance import implementations as impls  # noqa: E402
from lrp_conformance.protocol import PRESET_NAMES, Implementation  # noqa: E402

from helpers.torch_models import assert_untouched, snapshot  # noqa: E402

CPU_BUILTINS = [name for name in impls.available_implementations()
                if name not in ("lrp_core-cupy", "lrp_core-torch-cuda")]
LRP_CORE = ["lrp_core-numpy", "lrp_core-torch", "lrp_core-array-api-strict"]


def _plain_model() -> nn.Module:
    """Conv2d -> ReLU -> MaxPool -> Conv2d -> ReLU -> Flatten -> Linear (float64, eval)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 3 * 3, 5))
    return model.double().eval()


class _Branchy(nn.Module):
    """An input BatchNorm (the ZBox bounds are mapped through it), a Conv with its BatchNorm
    (merged), a module applied twice, a residual addition, a concatenation, functional ReLUs
    and flatten; every conv after the first reads a ReLU and feeds ReLUs only."""

    def __init__(self, merged_batchnorm: bool = True):
        super().__init__()
        self.norm_in = nn.BatchNorm2d(2)
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(4) if merged_batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 2, 1)
        self.conv4 = nn.Conv2d(4, 3, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(5 * 4 * 4, 3)

    def forward(self, x):
        a = F.relu(self.norm1(self.conv1(self.norm_in(x))))
        b = F.relu(self.conv2(a)) + a
        c = torch.relu(self.conv2(b))
        d = torch.cat([F.relu(self.conv3(c)), F.relu(self.conv4(c))], dim=1)
        return self.head(torch.flatten(self.pool(d), 1))


def _branchy_model(merged_batchnorm: bool = True) -> nn.Module:
    torch.manual_seed(1)
    model = _Branchy(merged_batchnorm).double().eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # torch's default eps (1e-5) kept on purpose
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g, dtype=torch.float64))
                m.bias.copy_(0.2 * torch.randn(c, generator=g, dtype=torch.float64))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g, dtype=torch.float64))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g, dtype=torch.float64))
    return model


def _input(shape=(3, 2, 8, 8), seed=3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, dtype=torch.float64, generator=g) * 2 - 1  # in [BOX_LOW, BOX_HIGH]


TARGETS = [0, 2, 1]


@pytest.fixture(scope="module")
def reference():
    """lrp-core's NumPy answers on the plain model, per preset."""
    impl = impls.load_implementation("lrp_core-numpy")
    return {p: impl.explain(_plain_model(), _input(), p, TARGETS) for p in PRESET_NAMES}


def _supported(names):
    return [(n, p) for n in names for p in PRESET_NAMES
            if p in impls.load_implementation(n).supports]


def _relative_difference(got, expected) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


# -- every built-in -------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "preset"), _supported(CPU_BUILTINS))
def test_result_is_well_formed(name, preset):
    impl = impls.load_implementation(name)
    assert isinstance(impl, Implementation) and impl.name == name
    x = _input()
    r = impl.explain(_plain_model(), x, preset, TARGETS)
    assert isinstance(r, np.ndarray)
    assert r.shape == tuple(x.shape) and r.dtype == np.float64
    assert np.isfinite(r).all() and np.abs(r).max() > 0


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_lrp_core_backends_agree(preset, reference):
    expected = reference[preset]
    for name in LRP_CORE[1:]:
        got = impls.load_implementation(name).explain(_plain_model(), _input(), preset, TARGETS)
        np.testing.assert_allclose(got, expected, rtol=1e-12,
                                   atol=1e-12 * np.abs(expected).max(), err_msg=name)


def test_every_lrp_core_backend_supports_every_preset():
    for name in LRP_CORE:
        assert impls.load_implementation(name).supports == set(PRESET_NAMES)


# -- Zennit ---------------------------------------------------------------------------------------
# Measured on the plain network: 2e-15 of the largest relevance on every preset; on the
# branchy one (BatchNorms with torch's eps 1e-5, residual, concatenation, a module applied
# twice): 1e-15. On the suite's random networks: <= 1e-13, but for inputs exactly on a box
# bound, where the z-box denominator cancels to rounding noise (up to 7e-8).

@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_zennit_agrees_with_lrp_core_on_a_plain_network(preset, reference):
    pytest.importorskip("zennit")
    got = impls.load_implementation("zennit").explain(_plain_model(), _input(), preset, TARGETS)
    assert _relative_difference(got, reference[preset]) <= 1e-8


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_zennit_agrees_with_lrp_core_on_a_branchy_network(preset):
    pytest.importorskip("zennit")
    model, x = _branchy_model(), _input()
    expected = impls.load_implementation("lrp_core-numpy").explain(model, x, preset, TARGETS)
    got = impls.load_implementation("zennit").explain(model, x, preset, TARGETS)
    assert _relative_difference(got, expected) <= 1e-8


class _ConvAfterConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3)
        self.conv2 = nn.Conv2d(3, 3, 3)  # reads a signed input, feeds no ReLU
        self.head = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.head(self.conv2(self.conv1(x)).flatten(1))


def test_zennit_refuses_gamma_where_its_generalised_gamma_differs():
    """Zennit's Gamma is the generalised gamma rule: where a gamma conv reads negative inputs
    it is another rule than lrp-core's GammaRule (it equals lrp-core's GeneralizedGammaRule),
    so the adapter refuses the example; the other presets still run."""
    pytest.importorskip("zennit")
    import lrp_core as lrp

    torch.manual_seed(4)
    model, x = _ConvAfterConv().double().eval(), _input((2, 2, 8, 8))
    zennit = impls.load_implementation("zennit")
    with pytest.raises(NotImplementedError, match="generalised gamma"):
        zennit.explain(model, x, "epsilon_gamma_box", [0, 1])
    zennit.explain(model, x, "epsilon_plus", [0, 1])
    # the refusal is warranted: lrp-core's GammaRule and GeneralizedGammaRule differ here
    composite = impls.lrp_core_preset("epsilon_gamma_box")
    generalised = lrp.Composite(
        lrp.GlobalTypeMap({lrp.ConvLayer: lrp.GeneralizedGammaRule(0.25),
                           lrp.Dense: lrp.EpsilonRule(1e-6), lrp.ReshapingLayer: lrp.PassRule()}),
        lrp.FirstOfTypeMap({lrp.ConvLayer: lrp.ZBoxRule(-1.0, 1.0)}))
    plain = lrp.LRP(model, composite)(x.numpy(), [0, 1]).val
    general = lrp.LRP(model, generalised)(x.numpy(), [0, 1]).val
    assert _relative_difference(general, plain) > 1e-3


def test_zennit_refuses_operations_outside_modules():
    pytest.importorskip("zennit")

    class Doubling(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, x):
            return self.linear(x * 2)

    model = Doubling().double().eval()
    with pytest.raises(NotImplementedError, match="outside a module"):
        impls.load_implementation("zennit").explain(model, _input((2, 3)), "zero", [0, 1])


# -- Captum ---------------------------------------------------------------------------------------
# Measured: 2e-15 of the largest relevance on the plain network and on the branchy one without
# its merged BatchNorm; <= 6e-15 on the suite's random networks that it accepts.

def test_captum_supports_zero_only():
    pytest.importorskip("captum")
    assert impls.load_implementation("captum").supports == {"zero"}


def test_captum_agrees_with_lrp_core_on_zero(reference):
    pytest.importorskip("captum")
    got = impls.load_implementation("captum").explain(_plain_model(), _input(), "zero", TARGETS)
    assert _relative_difference(got, reference["zero"]) <= 1e-8


def test_captum_agrees_on_a_branchy_network_and_refuses_a_merged_batchnorm():
    """Additions become Captum's Addition_Module, a module applied twice one module per
    application; a BatchNorm right after a Conv is refused: Captum does not merge it, and LRP-0
    on the two layers equals LRP-0 on the merged one only up to the stabiliser."""
    pytest.importorskip("captum")
    captum = impls.load_implementation("captum")
    model, x = _branchy_model(merged_batchnorm=False), _input()
    expected = impls.load_implementation("lrp_core-numpy").explain(model, x, "zero", TARGETS)
    got = captum.explain(model, x, "zero", TARGETS)
    assert _relative_difference(got, expected) <= 1e-8
    with pytest.raises(NotImplementedError, match="does not merge a BatchNorm"):
        captum.explain(_branchy_model(), x, "zero", TARGETS)
    with pytest.raises(ValueError, match="does not support"):
        captum.explain(model, x, "epsilon_plus", TARGETS)


class _ReadTwice(nn.Module):
    """A ReLU output read by a conv and by a concatenation."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(6 * 8 * 8, 3)

    def forward(self, x):
        a = F.relu(self.conv1(x))
        return self.head(torch.cat([a, F.relu(self.conv2(a))], dim=1).flatten(1))


def test_captum_refuses_a_value_read_by_a_layer_and_a_function():
    """Captum's gradient is ``R / z`` on some edges and ``R`` on others; where a value is read
    by both kinds of reader it sums the two and multiplies by the value (0.94 of the largest
    relevance off here when not refused). Zennit, whose hooks pass relevance on every edge,
    explains the same model as lrp-core."""
    pytest.importorskip("captum")
    pytest.importorskip("zennit")
    torch.manual_seed(5)
    model, x = _ReadTwice().double().eval(), _input()
    with pytest.raises(NotImplementedError, match="read by"):
        impls.load_implementation("captum").explain(model, x, "zero", TARGETS)
    for preset in ("zero", "epsilon_plus_flat"):
        expected = impls.load_implementation("lrp_core-numpy").explain(model, x, preset, TARGETS)
        got = impls.load_implementation("zennit").explain(model, x, preset, TARGETS)
        assert _relative_difference(got, expected) <= 1e-8


def _captum_alpha1_beta0(model, x, targets):
    """Captum's nearest to epsilon_plus: Alpha1_Beta0_Rule on convs, EpsilonRule(1e-6) on the
    Linear, from 1 at the target."""
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule

    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.rule = Alpha1_Beta0_Rule()
        elif isinstance(m, nn.Linear):
            m.rule = EpsilonRule(epsilon=1e-6)
        elif isinstance(m, nn.Flatten):
            m.rule = EpsilonRule(epsilon=1e-300)
    with torch.no_grad():
        logits = model(x)[torch.arange(len(targets)), torch.tensor(targets)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = LRP(model).attribute(x.clone(), target=targets)
    return (r / logits.reshape(-1, 1, 1, 1)).detach().numpy()


def test_captum_alpha1_beta0_is_zplus_only_without_biases_on_non_negative_inputs():
    """Why the Captum adapter leaves epsilon_plus out: Alpha1_Beta0_Rule computes ``W⁺a + b``
    where z⁺ takes ``W⁺a⁺ + W⁻a⁻ + b⁺``; the two agree with zero biases on inputs >= 0."""
    pytest.importorskip("captum")
    numpy_impl = impls.load_implementation("lrp_core-numpy")
    model, x = _plain_model(), _input()
    differs = _relative_difference(_captum_alpha1_beta0(model, x, TARGETS),
                                   numpy_impl.explain(model, x, "epsilon_plus", TARGETS))
    assert differs > 1e-3
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.zero_()
    x = (x + 1) / 2
    same = _relative_difference(_captum_alpha1_beta0(model, x, TARGETS),
                                numpy_impl.explain(model, x, "epsilon_plus", TARGETS))
    assert same <= 1e-8


# -- the user's model and input are left as they were ---------------------------------------------

def _assert_no_trace(model: nn.Module) -> None:
    for name, m in model.named_modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks, name
        assert not hasattr(m, "rule") and not hasattr(m, "activations"), name


@pytest.mark.parametrize(("name", "preset"), _supported(CPU_BUILTINS))
@pytest.mark.parametrize("make", [_plain_model, lambda: _branchy_model(False)],
                         ids=["plain", "branchy"])
def test_the_model_and_input_are_untouched(name, preset, make):
    model, x = make(), _input()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before, x_before = snapshot(model), x.clone()
    impls.load_implementation(name).explain(model, x, preset, TARGETS)
    assert_untouched(model, before)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    _assert_no_trace(model)
    assert torch.equal(x, x_before) and not x.requires_grad


# -- the loader -----------------------------------------------------------------------------------

def test_builtin_names():
    assert set(impls.BUILTIN_IMPLEMENTATIONS) == {
        "lrp_core-numpy", "lrp_core-torch", "lrp_core-torch-cuda", "lrp_core-array-api-strict",
        "lrp_core-cupy", "zennit", "zennit-defaults", "captum"}
    available = impls.available_implementations()
    assert {"lrp_core-numpy", "lrp_core-torch"} <= set(available)
    for name in available:
        impl = impls.load_implementation(name)
        assert impl.name == name and impl.supports <= set(PRESET_NAMES)


def test_cupy_without_a_device_is_unavailable():
    try:
        impl = impls.load_implementation("lrp_core-cupy")
    except impls.ImplementationUnavailable as error:
        assert "lrp_core-cupy needs" in str(error)
        assert "lrp_core-cupy" not in impls.available_implementations()
        return
    assert impl.supports == set(PRESET_NAMES)  # CuPy and a device: see test_cupy_agrees


def test_torch_cuda_without_a_device_is_unavailable():
    import torch

    if torch.cuda.is_available():
        assert impls.load_implementation("lrp_core-torch-cuda").supports == set(PRESET_NAMES)
        return
    with pytest.raises(impls.ImplementationUnavailable, match="lrp_core-torch-cuda needs a CUDA"):
        impls.load_implementation("lrp_core-torch-cuda")
    assert "lrp_core-torch-cuda" not in impls.available_implementations()


@pytest.mark.gpu
def test_cupy_agrees(reference):
    try:
        impl = impls.load_implementation("lrp_core-cupy")
    except impls.ImplementationUnavailable as error:
        pytest.skip(str(error))
    for preset in PRESET_NAMES:
        got = impl.explain(_plain_model(), _input(), preset, TARGETS)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_allclose(got, reference[preset], rtol=1e-12,
                                   atol=1e-12 * np.abs(reference[preset]).max())


_PLUGIN = '''
import numpy as np


class Ones:
    name = "ones"
    supports = {"zero"}

    def explain(self, model, x, preset, targets):
        return np.ones(tuple(x.shape))


instance = Ones()
instance.name = "the instance"


class NoExplain:
    name = "broken"
    supports = {"zero"}


class Typo:
    name = "typo"
    supports = {"epsilon-plus"}

    def explain(self, model, x, preset, targets):
        return None
'''


def test_module_class_specs(tmp_path, monkeypatch):
    module = "conformance_plugin_for_test"
    (tmp_path / f"{module}.py").write_text(_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    impl = impls.load_implementation(f"{module}:Ones")
    assert isinstance(impl, Implementation) and impl.name == "ones"
    assert impl.explain(None, torch.zeros(2, 3), "zero", [0, 0]).shape == (2, 3)
    instance = impls.load_implementation(f"{module}:instance")
    assert instance.name == "the instance"
    assert instance is impls.load_implementation(f"{module}:instance")
    with pytest.raises(ValueError, match="has no attribute 'Missing'"):
        impls.load_implementation(f"{module}:Missing")
    with pytest.raises(ValueError, match="protocol"):
        impls.load_implementation(f"{module}:NoExplain")
    with pytest.raises(ValueError, match="unknown presets"):
        impls.load_implementation(f"{module}:Typo")


def test_unknown_names_and_unimportable_modules(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="lrp_core-numpy") as error:
        impls.load_implementation("lrp-core")
    for name in impls.BUILTIN_IMPLEMENTATIONS:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="No module named"):
        impls.load_implementation("no_such_module_for_lrp_tests:Impl")
    (tmp_path / "broken_plugin_for_test.py").write_text("import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="no_such_dependency_here"):
        impls.load_implementation("broken_plugin_for_test:Impl")


def test_zennit_as_documented_doubles_relevance_at_a_residual_addition():
    """The finding of docs/conformance.md: Zennit's composites used as documented pass the
    gradient through a ``+`` written outside a module, so both summands get the whole relevance
    (the input relevance sums to 2); configured with its Sum module (the ``zennit`` adapter), it
    is conservative like lrp-core."""
    pytest.importorskip("zennit")
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.head = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)

        def forward(self, x):
            return self.head(torch.relu(self.inner(x)) + x)

    model = Residual().double().eval()
    with torch.no_grad():
        model.inner.weight.copy_(torch.tensor([[0.5, 0.2], [0.3, 0.4]], dtype=torch.float64))
        model.head.weight.copy_(torch.tensor([[0.6, 0.7]], dtype=torch.float64))
    x = torch.tensor([[0.9, 0.8]], dtype=torch.float64)
    documented = impls.load_implementation("zennit-defaults").explain(model, x, "epsilon_plus", [0])
    matched = impls.load_implementation("zennit").explain(model, x, "epsilon_plus", [0])
    ours = impls.load_implementation("lrp_core-numpy").explain(model, x, "epsilon_plus", [0])
    assert abs(ours.sum() - 1) < 1e-5 and abs(matched.sum() - 1) < 1e-5
    assert abs(documented.sum() - 2) < 1e-4
