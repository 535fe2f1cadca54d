"""The contenders: what one timed call is, for each implementation.

Each ``prepare_*`` function builds everything a call needs (analyzer, hooks, inputs) outside
the timing and returns a :class:`Contender`, whose ``call()`` is the one thing timed, or raises
:class:`Unsupported` with the reason. Peers are used as their users use them: Zennit's
``Gradient`` attributor inside its composite's context with its canonizers, Captum's
``LRP(model).attribute`` on a copy of the model carrying Captum's rules.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import lrp_core as lrp

__all__ = ["Contender", "Unsupported", "PRESETS", "CONTENDERS", "prepare"]

#: The presets timed: lrp-core's composite for each, by the name used in the tables.
PRESETS = {
    "Epsilon": lambda: lrp.EpsilonRule(1e-6),
    "EpsilonPlusFlat": lambda: lrp.EpsilonPlusFlat(),
    "EpsilonGammaBox": lambda: lrp.EpsilonGammaBox(-3.0, 3.0),
}


class Unsupported(Exception):
    """The contender cannot run this model or preset (the message says why)."""


@dataclass
class Contender:
    name: str
    call: object  # () -> None: the timed call
    close: object = field(default=lambda: None)  # releases hooks and contexts


def _targets(model, x):
    import torch

    with torch.no_grad():
        return model(x).argmax(1)


def prepare_gradient(spec, model, x, preset):
    """The gradient of the selected logits with respect to the input (parameters do not
    require gradients), the cost an LRP pass is compared with."""
    import torch

    if isinstance(model, str):
        raise Unsupported("no torch module for an ONNX file")
    targets = _targets(model, x)

    def call():
        xt = x.detach().requires_grad_(True)
        out = model(xt)
        torch.autograd.grad(out.gather(1, targets[:, None]).sum(), xt)

    return Contender("gradient", call)


def prepare_forward(spec, model, x, preset):
    """The forward pass alone (torch without autograd; onnxruntime for an ONNX file)."""
    if isinstance(model, str):
        try:
            import onnxruntime
        except ImportError as error:
            raise Unsupported(f"onnxruntime is not installed ({error})") from None
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        data = x.detach().cpu().numpy()
        if session.get_inputs()[0].shape[0] == 1 and data.shape[0] != 1:
            raise Unsupported("the ONNX file fixes the batch at 1")

        def call():
            session.run(None, {name: data})

        return Contender("forward", call)
    import torch

    def call():
        with torch.no_grad():
            model(x)

    return Contender("forward", call)


def _lrp_core(backend: str):
    def prepare_lrp_core(spec, model, x, preset):
        analyzer = lrp.LRP(model, PRESETS[preset]())
        if backend == "numpy":
            data = x.detach().cpu().numpy()
        elif backend == "cupy":
            try:
                import cupy
            except ImportError as error:
                raise Unsupported(f"cupy is not installed ({error})") from None
            if x.device.type != "cuda":
                raise Unsupported("the CuPy contender runs with --device cuda")
            data = cupy.from_dlpack(x.detach())  # the same GPU memory, no copy
        else:
            data = x
        if isinstance(model, str):  # an ONNX file: no torch targets
            selection = None
        else:
            selection = _targets(model, x).tolist()

        def call():
            analyzer(data, selection)

        return Contender(f"lrp-core/{backend}", call)

    return prepare_lrp_core


def prepare_zennit(spec, model, x, preset):
    try:
        import torch
        from zennit import composites
        from zennit.attribution import Gradient
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.composites import LayerMapComposite, layer_map_base
        from zennit.rules import Epsilon
        from zennit.torchvision import ResNetCanonizer, VGGCanonizer
        from zennit.types import Convolution, Linear
    except ImportError as error:
        raise Unsupported(f"zennit is not installed ({error})") from None
    if isinstance(model, str):
        raise Unsupported("Zennit explains torch modules only")
    canonizers = {"vgg": [VGGCanonizer()], "resnet": [ResNetCanonizer()],
                  "merge-bn": [SequentialMergeBatchNorm()], None: []}[spec.zennit_canonizer]
    if preset == "Epsilon":
        composite = LayerMapComposite(layer_map_base(1e-6) + [(Convolution, Epsilon(1e-6)),
                                                              (Linear, Epsilon(1e-6))],
                                      canonizers=canonizers)
    elif preset == "EpsilonPlusFlat":
        composite = composites.EpsilonPlusFlat(canonizers=canonizers)
    elif preset == "EpsilonGammaBox":
        composite = composites.EpsilonGammaBox(low=-3.0, high=3.0, canonizers=canonizers)
    else:
        raise Unsupported(f"no Zennit composite for {preset}")
    targets = _targets(model, x)
    with torch.no_grad():
        n_out = model(x[:1]).shape[1]
    onehot = torch.eye(n_out, dtype=x.dtype)[targets]
    # Zennit's hooks and canonizers change the module they are registered on while its
    # context is open: it gets its own copy, so the other contenders run the plain model
    own = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attributor = Gradient(own, composite)
        attributor.__enter__()

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attributor(x, onehot)

    return Contender("zennit", call, close=lambda: attributor.__exit__(None, None, None))


def prepare_captum(spec, model, x, preset):
    try:
        from captum.attr import LRP as CaptumLRP
        from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule
    except ImportError as error:
        raise Unsupported(f"captum is not installed ({error})") from None
    if isinstance(model, str) or not spec.captum:
        raise Unsupported("Captum's LRP needs a network of modules only (no functional "
                          "additions or reshapes)")
    if preset != "Epsilon":
        raise Unsupported(f"Captum has no {preset} (no flat or box rule)")
    from torch import nn

    own = copy.deepcopy(model)  # Captum sets a `rule` attribute on the modules it explains
    for module in own.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.rule = EpsilonRule(1e-6)
        elif isinstance(module, (nn.Flatten, nn.Dropout)):
            module.rule = IdentityRule()
    targets = _targets(model, x).tolist()
    explainer = CaptumLRP(own)

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer.attribute(x, target=targets)

    return Contender("captum", call)


CONTENDERS = {
    "forward": prepare_forward,
    "gradient": prepare_gradient,
    "lrp-core/torch": _lrp_core("torch"),
    "lrp-core/numpy": _lrp_core("numpy"),
    "lrp-core/cupy": _lrp_core("cupy"),
    "zennit": prepare_zennit,
    "captum": prepare_captum,
}


def prepare(name, spec, model, x, preset) -> Contender:
    return CONTENDERS[name](spec, model, x, preset)
