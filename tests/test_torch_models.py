"""torchvision architectures read with ``lrp.from_torch``: seeded random (He) weights and random
BatchNorm statistics, float64, small inputs (32 x 32; AlexNet 64 x 64).

Per architecture: the graph computes the module's output; LRP-0 from the logit equals autograd
gradient x input (ReLU networks); every preset and ZeroRule explain it; the torch path equals the
NumPy path; Zennit (and, where it applies, Captum) configured with our conventions gives the
same relevance; and the module is bit-for-bit untouched afterwards.

Each model is built once (a module-scoped fixture; pytest runs one architecture's tests
together) and each explanation is computed once and shared by the tests that check it.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import lrp_core as lrp  # noqa: E402

from helpers.torch_models import (  # noqa: E402
    assert_relevance_close,
    assert_untouched,
    gradient_times_input,
    reinitialise,
    snapshot,
)

# name -> input size (AlexNet's first convolution and pools need 63 pixels at least)
ARCHITECTURES = {
    "vgg11": 32, "vgg11_bn": 32, "vgg16": 32, "vgg16_bn": 32, "resnet18": 32, "resnet50": 32,
    "alexnet": 64, "squeezenet1_0": 32, "squeezenet1_1": 32, "mobilenet_v2": 32, "densenet121": 32,
}
RELU_NETWORKS = set(ARCHITECTURES) - {"mobilenet_v2"}  # ReLU6 saturates: no gradient identity
ZENNIT_PRESETS = ["EpsilonPlus", "EpsilonPlusFlat", "EpsilonAlpha2Beta1", "EpsilonAlpha2Beta1Flat",
                  "EpsilonGammaBox"]
NUMPY_PRESETS = ["ZeroRule", "EpsilonPlusFlat", "EpsilonGammaBox"]
# The VGGs carry a 25088 x 4096 float64 matrix (822 MB) that Zennit copies for every pass: to keep
# the suite within minutes each VGG is compared with Zennit on one preset (all five presets are
# covered across the four VGGs), and with NumPy on ZeroRule only.
SUBSETS = {
    "zennit": {"vgg11": ["EpsilonGammaBox"], "vgg11_bn": ["EpsilonPlusFlat"],
               "vgg16": ["EpsilonAlpha2Beta1Flat"],
               "vgg16_bn": ["EpsilonPlus", "EpsilonAlpha2Beta1"],
               "resnet50": ["EpsilonPlusFlat", "EpsilonGammaBox"],
               "squeezenet1_0": ["EpsilonPlus", "EpsilonGammaBox"]},
    "numpy": {name: ["ZeroRule"] for name in ("vgg11", "vgg11_bn", "vgg16", "vgg16_bn")},
    "captum": {"vgg11_bn": ["ZeroRule"], "vgg16": ["ZeroRule"], "vgg16_bn": ["ZeroRule"]},
}


def _subset(kind: str, name: str, preset: str) -> None:
    """Skip a combination left out to save time (see SUBSETS)."""
    chosen = SUBSETS[kind].get(name)
    if chosen is not None and preset not in chosen:
        pytest.skip(f"{kind} comparison on {name} is run for {', '.join(chosen)} only (time)")


def _presets():
    return {
        "ZeroRule": lrp.ZeroRule(),
        "EpsilonGammaBox": lrp.EpsilonGammaBox(0.0, 1.0),
        "EpsilonPlus": lrp.EpsilonPlus(),
        "EpsilonAlpha2Beta1": lrp.EpsilonAlpha2Beta1(),
        "EpsilonPlusFlat": lrp.EpsilonPlusFlat(),
        "EpsilonAlpha2Beta1Flat": lrp.EpsilonAlpha2Beta1Flat(),
    }


class Case:
    """One architecture: the module, its input, and explanations computed on demand, once."""

    def __init__(self, name: str):
        self.name = name
        torch.manual_seed(0)
        self.model = reinitialise(getattr(torchvision.models, name)(weights=None).double().eval(),
                                  seed=1)
        size = ARCHITECTURES[name]
        g = torch.Generator().manual_seed(2)
        self.x = torch.rand(2, 3, size, size, dtype=torch.float64, generator=g)
        self.before = snapshot(self.model)
        self._cache = {}

    def explain(self, preset: str, x=None, **options):
        key = (preset, "numpy" if isinstance(x, np.ndarray) else "torch",
               tuple(sorted(options.items())))
        if key not in self._cache:
            analyzer = lrp.LRP(self.model, _presets()[preset], **options)
            self._cache[key] = analyzer(self.x if x is None else x)
        return self._cache[key]


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def case(request):
    return Case(request.param)


def test_graph_computes_the_module_output(case):
    graph = lrp.from_torch(case.model)
    with torch.no_grad():
        expected = case.model(case.x)
    for model in (graph, lrp.canonize(graph)):
        out = model.forward(case.x)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, expected, rtol=1e-12,
                                   atol=1e-12 * float(expected.abs().max()))


def test_lrp0_from_the_logit_equals_gradient_times_input(case):
    if case.name not in RELU_NETWORKS:
        pytest.skip("MobileNetV2's ReLU6 saturates: "
                    "its gradient is 0 where LRP passes relevance on")
    # LRP-0 is LRP-ε with ε -> 0: with ε = 1e-100 the identity holds to rounding
    exact = lrp.LRP(case.model, lrp.EpsilonRule(1e-100), normalize_output_relevance=False)(case.x)
    expected = gradient_times_input(case.model, case.x, exact.output_selection)
    assert_relevance_close(exact.val, expected, rtol=1e-8)
    # ZeroRule's stabiliser (1e-9) moves it by about 1e-9 / |z| relative: 1e-5 here
    zero = case.explain("ZeroRule", normalize_output_relevance=False)
    assert_relevance_close(zero.val, expected, rtol=1e-5)


@pytest.mark.parametrize("preset", list(_presets()))
def test_every_preset_explains_the_model(case, preset):
    expl = case.explain(preset)
    assert isinstance(expl.val, torch.Tensor)
    assert expl.val.shape == case.x.shape and expl.val.dtype == torch.float64
    assert expl.val.device == case.x.device
    assert bool(torch.isfinite(expl.val).all()) and float(expl.val.abs().max()) > 0
    with torch.no_grad():
        assert expl.output_selection == case.model(case.x).argmax(1).tolist()


@pytest.mark.parametrize("preset", NUMPY_PRESETS)
def test_torch_path_equals_numpy_path(case, preset):
    _subset("numpy", case.name, preset)
    torch_expl = case.explain(preset)
    numpy_expl = case.explain(preset, case.x.numpy())
    assert isinstance(numpy_expl.val, np.ndarray) and numpy_expl.val.dtype == np.float64
    assert numpy_expl.output_selection == torch_expl.output_selection
    assert_relevance_close(numpy_expl.val, torch_expl.val, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# Zennit, configured with our conventions: stabiliser 1e-9, one-hot output relevance, BatchNorm
# merged (with eps 1e-10, see below), residual additions as zennit Sum modules (its ResNet
# canonizer, and the same for MobileNetV2 below), and MaxPool under its Norm rule, which is our
# generic rule on max pooling (Zennit's default, the plain gradient, differs where a window's
# maximum is 0 yet receives relevance: after an unfused BatchNorm with PassRule, in DenseNet).
#
# Zennit's merge leaves each BatchNorm computing x / sqrt(1 + eps), a relative change of eps/2
# per BatchNorm; with torch's default eps (1e-5) the two differ by about 1e-5 on BN networks, so
# the comparison runs on a copy of the model whose BatchNorms have eps = 1e-10.
#
# EpsilonGammaBox: Zennit's Gamma is the generalised gamma rule. On networks where every conv is
# followed by a ReLU (VGG, AlexNet, SqueezeNet) the two coincide; elsewhere (a residual addition
# or concatenation between the conv and the ReLU) ours is compared with the same composite with
# lrp.GeneralizedGammaRule on convolutions.

GENERALISED_GAMMA = {"resnet18", "resnet50", "mobilenet_v2", "densenet121"}


def _zennit_canonizers(name, model):
    from zennit.canonizers import AttributeCanonizer, NamedMergeBatchNorm, SequentialMergeBatchNorm
    from zennit.layer import Sum
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    if name.startswith("vgg"):
        return [VGGCanonizer()]
    if name.startswith("resnet"):
        return [ResNetCanonizer()]
    if name.startswith("densenet"):
        # SequentialMergeBatchNorm pairs each dense layer's last conv with the next layer's
        # BatchNorm (leaf order) and fails; name the real pairs instead
        pairs = [(("features.conv0",), "features.norm0")]
        pairs += [((n + ".conv1",), n + ".norm2") for n, m in model.named_modules()
                  if type(m).__name__ == "_DenseLayer"]
        return [NamedMergeBatchNorm(pairs)]
    if name == "mobilenet_v2":
        from torchvision.models.mobilenetv2 import InvertedResidual

        def residual_forward(self, x):
            return self.canonizer_sum(torch.stack([x, self.conv(x)], dim=-1))

        def attributes(_, module):
            if isinstance(module, InvertedResidual) and module.use_res_connect:
                return {"forward": residual_forward.__get__(module), "canonizer_sum": Sum()}
            return None

        return [SequentialMergeBatchNorm(), AttributeCanonizer(attributes)]
    return [SequentialMergeBatchNorm()]


def _generalised_gamma_box():
    return lrp.Composite(
        lrp.GlobalTypeMap({lrp.ConvLayer: lrp.GeneralizedGammaRule(0.25),
                           lrp.Dense: lrp.EpsilonRule(1e-6),
                           lrp.NormalizationLayer: lrp.PassRule(), lrp.DropoutLayer: lrp.PassRule(),
                           lrp.ReshapingLayer: lrp.PassRule()}),
        lrp.FirstLayerTypeMap({lrp.ConvLayer: lrp.ZBoxRule(0.0, 1.0)}),
    )


@pytest.fixture(scope="module")
def zennit_model(case):
    """A copy for Zennit (its canonizers rewrite parameters while they are registered)."""
    pytest.importorskip("zennit")
    model = copy.deepcopy(case.model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps = 1e-10
    return model


@pytest.mark.parametrize("preset", ZENNIT_PRESETS)
def test_agrees_with_zennit(case, zennit_model, preset):
    _subset("zennit", case.name, preset)
    from zennit import composites
    from zennit.attribution import Gradient
    from zennit.rules import Norm
    from zennit.types import MaxPool

    composite = _presets()[preset]
    if preset == "EpsilonGammaBox" and case.name in GENERALISED_GAMMA:
        composite = _generalised_gamma_box()
    ours = lrp.LRP(zennit_model, composite)(case.x)

    kwargs = dict(stabilizer=1e-9, layer_map=[(MaxPool, Norm(stabilizer=1e-9))],
                  canonizers=_zennit_canonizers(case.name, zennit_model))
    if preset == "EpsilonGammaBox":
        kwargs.update(low=torch.zeros_like(case.x), high=torch.ones_like(case.x))
    zennit_composite = getattr(composites, preset)(**kwargs)
    onehot = torch.eye(1000, dtype=torch.float64)[ours.output_selection]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warnings about full backward hooks
        with Gradient(zennit_model, zennit_composite) as attributor:
            _, relevance = attributor(case.x, onehot)
    assert_relevance_close(ours.val, relevance, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Captum's LRP: EpsilonRule (stabiliser 1e-9, its default on every layer) is our ZeroRule,
# unfused (Captum gives BatchNorm the epsilon rule as a layer of its own), started from the
# logit. Its GammaRule and Alpha1_Beta0_Rule leave the bias as it is, where ours use b + γb⁺ and
# b⁺: they agree with GammaRule and ZPlusRule on a model with zero biases (and inputs >= 0).
# Captum handles neither a functional residual addition (ResNet, MobileNetV2) nor a module used
# twice; DenseNet's functional ReLU and pooling give it the plain gradient there.

CAPTUM = {"vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "alexnet", "squeezenet1_0", "squeezenet1_1"}


@pytest.fixture(scope="module")
def captum_model(case):
    """A copy for Captum (which sets attributes on the modules): ReLUs not in place (Captum's
    hooks cannot follow an in-place ReLU), biases zero (see above)."""
    if case.name not in CAPTUM:
        pytest.skip("Captum's LRP copies relevance through a functional residual addition")
    pytest.importorskip("captum")
    model = copy.deepcopy(case.model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.zero_()
    return model


@pytest.mark.parametrize("rules", ["ZeroRule", "GammaRule", "ZPlusRule"])
def test_agrees_with_captum(case, captum_model, rules):
    _subset("captum", case.name, rules)
    from captum.attr import LRP as CaptumLRP
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule

    composite = {"ZeroRule": lrp.ZeroRule(),
                 "GammaRule": lrp.Composite(lrp.GlobalTypeMap({lrp.Conv: lrp.GammaRule(0.25)})),
                 "ZPlusRule": lrp.Composite(lrp.GlobalTypeMap({lrp.Conv: lrp.ZPlusRule()}))}[rules]
    ours = lrp.LRP(captum_model, composite, normalize_output_relevance=False,
                   canonize=False)(case.x)
    conv_rule = {"ZeroRule": EpsilonRule, "GammaRule": lambda: GammaRule(0.25),
                 "ZPlusRule": Alpha1_Beta0_Rule}[rules]
    for m in captum_model.modules():
        if isinstance(m, nn.Conv2d):
            m.rule = conv_rule()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relevance = CaptumLRP(captum_model).attribute(case.x.clone(), target=ours.output_selection)
    assert_relevance_close(ours.val, relevance, rtol=1e-10)


def test_zz_module_untouched(case):
    """Runs last for each architecture: all of the above left the module as it was."""
    assert_untouched(case.model, case.before)
