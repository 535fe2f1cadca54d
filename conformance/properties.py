"""The properties every LRP implementation must have, each checked on an implementation as a
black box.

A property draws cases (a network, an input batch, targets) with hypothesis and checks the
implementation's answers against an oracle that does not depend on the implementation: torch's
autograd, a formula computed here by hand, an equivalent network, the implementation itself on
other inputs, or this library's float64 reference. Each property's docstring says why it must
hold; :attr:`Property.presets` says for which presets (the others are "not applicable").
Tolerances are relative to the largest magnitude of the expected relevance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume, reject

from .protocol import BOX_HIGH, BOX_LOW, EPSILON, PRESET_NAMES
from .strategies import Case, cases, linear_layer_cases, networks

__all__ = ["Property", "PropertyFailure", "PROPERTIES", "explain"]

ALL = frozenset(PRESET_NAMES)
STABILIZER = 1e-9  # every rule but the epsilon rule (docs/conventions.md)


class PropertyFailure(AssertionError):
    """A property does not hold on ``case``; ``message`` says how."""

    def __init__(self, message: str, case: Case, extra_code: str = ""):
        super().__init__(message)
        self.message, self.case, self.extra_code = message, case, extra_code


# -- calling the implementation --------------------------------------------------------------

def explain(impl, network, x: np.ndarray, preset: str, targets, case: Case) -> np.ndarray:
    """``impl.explain`` on a fresh build of ``network``; an exception of the implementation is a
    failure (``NotImplementedError`` marks an input it does not support: the example is
    skipped)."""
    import torch

    model = network.build()
    tensor = torch.from_numpy(np.array(x, dtype=np.float64))
    try:
        result = impl.explain(model, tensor, preset, [int(t) for t in targets])
    except NotImplementedError:
        reject()
    except Exception as error:  # noqa: BLE001 - any error of the implementation is a finding
        raise PropertyFailure(f"{impl.name} raised {type(error).__name__}: {error}", case) \
            from error
    if hasattr(result, "detach"):
        result = result.detach().cpu().numpy()
    return np.asarray(result)


def _logits(network, x) -> np.ndarray:
    import torch

    with torch.no_grad():
        return network.build()(torch.from_numpy(x)).numpy()


def _assume_logits_away_from_zero(case: Case, limit=0.05):
    logits = _logits(case.network, case.x)
    assume(all(abs(logits[i, t]) >= limit for i, t in enumerate(case.targets)))


def _close(got, expected, rtol, case, what, extra_code=""):
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    worst = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if not worst <= rtol * max(scale, 1e-300) + 1e-300:
        share = worst / max(scale, 1e-300)
        raise PropertyFailure(f"{what}: max |difference| = {worst:.3g}, {share:.3g} of the "
                              f"largest relevance {scale:.3g} (tolerance {rtol:g})",
                              case, extra_code)


# -- the properties ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Property:
    """A named check: ``check(impl, preset, case)`` raises :class:`PropertyFailure`."""

    name: str
    check: object
    strategy: object
    presets: frozenset = ALL

    @property
    def why(self) -> str:
        """Why the property must hold: its check's docstring, on one line."""
        return " ".join((self.check.__doc__ or "").split())

    def cases(self, preset: str):
        return self.strategy(preset) if callable(self.strategy) else self.strategy


def result_is_well_formed(impl, preset, case):
    """The result has the input's shape, is float64 for a float64 input and is finite: the
    relevance of each input element, in the input's precision, with nothing undefined."""
    r = explain(impl, case.network, case.x, preset, case.targets, case)
    if r.shape != case.x.shape:
        raise PropertyFailure(f"result shape {r.shape}, input shape {case.x.shape}", case)
    if r.dtype != np.float64:
        raise PropertyFailure(f"result dtype {r.dtype} for a float64 input", case)
    if not np.all(np.isfinite(r)):
        raise PropertyFailure(f"{int(np.sum(~np.isfinite(r)))} non-finite values", case)


def target_selects_the_row(impl, preset, case):
    """The relevance for target ``t`` depends on the output layer only through its row ``t``:
    the other outputs start with relevance 0 and every rule is local to an output neuron, so
    a model whose output layer keeps row ``t`` alone must give the same relevance. An
    implementation that explains another output (the argmax, output 0, t ± 1) fails here."""
    network = case.network
    assume(network.n_outputs > 1)
    for i, t in enumerate(case.targets):
        alone = network.only_output(t)
        got = explain(impl, network, case.x[i:i + 1], preset, [t], case)
        expected = explain(impl, alone, case.x[i:i + 1], preset, [0], case)
        _close(got, expected, 1e-9, case, f"sample {i}, target {t}: the relevance differs from "
               "that of the same model with only output t kept", alone.class_code())


def batch_equals_samples(impl, preset, case):
    """Explaining a batch equals explaining its samples one by one, in order: LRP explains each
    sample on its own; a batch must not mix samples, reorder them or share a normalisation."""
    assume(len(case.x) > 1)
    whole = explain(impl, case.network, case.x, preset, case.targets, case)
    for i, t in enumerate(case.targets):
        one = explain(impl, case.network, case.x[i:i + 1], preset, [t], case)
        _close(whole[i:i + 1], one, 1e-9, case, f"sample {i} of the batch differs from sample {i} "
               "explained alone")


def deterministic_and_side_effect_free(impl, preset, case):
    """Two calls on the same input give the same relevance, and a call leaves the model's
    parameters and buffers, its hooks and the input as they were: an explanation is a function
    of the model and the input, and explaining must not change either."""
    import torch

    model = case.network.build()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.from_numpy(case.x.copy())
    results = []
    for _ in range(2):
        try:
            r = impl.explain(model, x, preset, list(case.targets))
        except NotImplementedError:
            reject()
        except Exception as error:  # noqa: BLE001
            raise PropertyFailure(f"{impl.name} raised {type(error).__name__}: {error}", case) \
                from error
        results.append(np.asarray(r.detach().cpu().numpy() if hasattr(r, "detach") else r))
    _close(results[1], results[0], 1e-12, case, "a second call gave another result")
    if not np.array_equal(x.numpy(), case.x):
        raise PropertyFailure("the input tensor was modified", case)
    for key, value in model.state_dict().items():
        if key not in state or not torch.equal(value, state[key]):
            raise PropertyFailure(f"the model's {key} was modified", case)
    hooked = [name for name, m in model.named_modules()
              if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]
    if hooked:
        raise PropertyFailure(f"hooks left on {hooked}", case)


def relevance_is_conserved(impl, preset, case):
    """With zero biases and a ReLU after every layer, the input relevance of each sample sums to
    the target's relevance, 1: every rule of these presets redistributes without loss, up to its
    stabiliser (1e-9; exact as epsilon -> 0) and, on Dense layers, the epsilon rule's leak
    (epsilon = 1e-6: a bounded leak). Not applicable to the alpha-beta presets: LRP-alpha-beta is
    conservative only where both the positive and the negative part of a neuron are non-empty."""
    _assume_logits_away_from_zero(case)
    r = explain(impl, case.network, case.x, preset, case.targets, case)
    totals = r.reshape(len(r), -1).sum(axis=1)
    tolerance = 1e-6 if preset == "zero" else 1e-3
    worst = float(np.max(np.abs(totals - 1.0)))
    if not worst <= tolerance:
        raise PropertyFailure(f"input relevance sums to {totals.tolist()}, not 1 "
                              f"(max |sum − 1| = {worst:.3g}, allowed {tolerance:g})", case)


def zero_is_gradient_times_input(impl, preset, case):
    """LRP-0 equals gradient × input divided by the target's logit on networks of ReLUs, linear
    layers, max and average pooling, BatchNorm, additions and concatenations (all piecewise
    linear): each rule is the gradient of the local linear map. torch's autograd is the oracle;
    the two differ by the 1e-9 stabiliser only (|logit| >= 0.05). (Where a
    pre-activation is exactly 0 with non-zero terms, LRP-0 passes nothing on and the gradient
    does: the inputs here are continuous, so that happens with probability 0.)"""
    import torch

    _assume_logits_away_from_zero(case)
    model = case.network.build()
    x = torch.from_numpy(case.x.copy()).requires_grad_(True)
    y = model(x)
    picked = y[torch.arange(len(case.targets)), torch.tensor(case.targets)]
    (grad,) = torch.autograd.grad(picked.sum(), x)
    shape = (-1,) + (1,) * (x.dim() - 1)
    expected = (x * grad / picked.reshape(shape)).detach().numpy()
    got = explain(impl, case.network, case.x, preset, case.targets, case)
    # the stabiliser moves each neuron's share by 1e-9/|z|: hidden pre-activations of 1e-5
    # occur in random networks, so 1e-4 of the largest relevance (a stabiliser of 1e-3, or any
    # real deviation from the gradient, is far above it)
    _close(got, expected, 1e-4, case, "LRP-0 differs from gradient × input / logit (autograd)")


def linear_layer_base_case(impl, preset, case):
    """On a single linear layer (a Linear, or a Conv followed by Flatten) each preset's rule is a
    closed formula in the layer's matrix ``M`` (its Jacobian, from autograd), its bias ``b``
    and the input ``a``, written out here: LRP-0 and epsilon ``a_j M_tj / stab(z_t)``; z⁺, αβ,
    flat (``M`` → its 0/1 connectivity, input → 1) and zᴮ as in docs/conventions.md. A Linear is
    a Dense layer (epsilon in every preset but ``zero``); a Conv is the first conv."""
    network, x = case.network, case.x
    m, connect, bias, is_conv = _layer_matrix(network, x.shape[1:])
    got = explain(impl, network, x, preset, case.targets, case)
    for i, t in enumerate(case.targets):
        a = x[i].reshape(-1)
        expected = _formula(preset, is_conv, m, connect, bias, a, t).reshape(x.shape[1:])
        _close(got[i], expected, 1e-8, case, f"sample {i}, target {t}: differs from the "
               f"{_rule_name(preset, is_conv)} formula")


def batchnorm_folding_invariance(impl, preset, case):
    """A BatchNorm right after a Conv or Linear is folded into it before the rules apply (its
    epsilon included): the network with the BatchNorm folded by hand must be explained the same."""
    network = case.network
    assume(network.foldable_batchnorms())
    folded = network.fold_batchnorms()
    got = explain(impl, network, case.x, preset, case.targets, case)
    expected = explain(impl, folded, case.x, preset, case.targets, case)
    _close(got, expected, 1e-8, case, "the network with its BatchNorms folded by hand is "
           "explained differently", folded.class_code())


def layer_split_invariance(impl, preset, case):
    """Every rule is local to an output neuron: splitting the output layer into two layers that
    compute half of the outputs each, concatenated, must not change the relevance."""
    assume(case.network.n_outputs > 1)
    split = case.network.split_head()
    got = explain(impl, case.network, case.x, preset, case.targets, case)
    expected = explain(impl, split, case.x, preset, case.targets, case)
    _close(got, expected, 1e-9, case, "the network with its output layer split in two "
           "(concatenated) is explained differently", split.class_code())


def agrees_with_reference(impl, preset, case):
    """This library's float64 NumPy implementation is the reference: its rules are the equations
    of docs/conventions.md, each checked against an independent oracle in its own tests. An
    implementation of the same presets agrees with it to 1e-6 of the largest relevance."""
    from .implementations import load_implementation

    reference = load_implementation("lrp_core-numpy")
    expected = explain(reference, case.network, case.x, preset, case.targets, case)
    got = explain(impl, case.network, case.x, preset, case.targets, case)
    _close(got, expected, 1e-6, case, "differs from lrp-core's float64 reference")


# -- hand-written formulas for the base case -------------------------------------------------

def _layer_matrix(network, sample_shape):
    """``(M, connectivity, bias, is_conv)`` of a one-layer network, through autograd."""
    import torch

    (name, module), = [(n, m) for n, m in network.modules if m.kind != "Flatten"]
    weight = torch.from_numpy(module.params["weight"])
    bias = module.params.get("bias")
    is_conv = module.kind.startswith("Conv")
    size = int(np.prod(sample_shape))

    def jacobian(w):
        if is_conv:
            conv = getattr(torch.nn.functional, module.kind.lower())
            opts = module.options

            def f(v):
                return conv(v.reshape(1, *sample_shape), w, None, opts["stride"], opts["padding"],
                            opts["dilation"], opts["groups"]).reshape(-1)
        else:
            def f(v):
                return v @ w.T
        return torch.autograd.functional.jacobian(f, torch.zeros(size, dtype=torch.float64))

    m = jacobian(weight).numpy()
    connect = jacobian(torch.ones_like(weight)).numpy() != 0
    if bias is None:
        bias = np.zeros(m.shape[0])
    elif is_conv:
        bias = np.repeat(bias, m.shape[0] // len(bias))
    return m, connect.astype(np.float64), np.asarray(bias, dtype=np.float64), is_conv


def _stab(z, eps):
    return z + eps * (1.0 if z >= 0 else -1.0)


def _rule_name(preset, is_conv):
    if not is_conv or preset in ("attn_lrp", "cp_lrp"):
        return "LRP-0" if preset == "zero" else "LRP-epsilon"
    return {"zero": "LRP-0", "epsilon_plus": "LRP-z+", "epsilon_plus_flat": "LRP-flat",
            "epsilon_alpha2_beta1": "LRP-alpha2-beta1", "epsilon_alpha2_beta1_flat": "LRP-flat",
            "epsilon_gamma_box": "LRP-zB"}[preset]


def _formula(preset, is_conv, m, connect, bias, a, t):
    row, b = m[t], bias[t]
    pos, neg = np.maximum(row, 0), np.minimum(row, 0)
    a_pos, a_neg = np.maximum(a, 0), np.minimum(a, 0)
    rule = _rule_name(preset, is_conv)
    if rule in ("LRP-0", "LRP-epsilon"):
        eps = STABILIZER if rule == "LRP-0" else EPSILON
        return a * row / _stab(float(row @ a + b), eps)
    if rule == "LRP-z+":
        z = float(pos @ a_pos + neg @ a_neg + max(b, 0))
        return (a_pos * pos + a_neg * neg) / _stab(z, STABILIZER)
    if rule == "LRP-alpha2-beta1":
        z_plus = float(pos @ a_pos + neg @ a_neg + max(b, 0))
        z_minus = float(pos @ a_neg + neg @ a_pos + min(b, 0))
        return (2 * (a_pos * pos + a_neg * neg) / _stab(z_plus, STABILIZER)
                - (a_neg * pos + a_pos * neg) / _stab(z_minus, STABILIZER))
    if rule == "LRP-flat":
        return connect[t] / _stab(float(connect[t].sum()), STABILIZER)
    # LRP-zB with the suite's bounds
    low, high = BOX_LOW, BOX_HIGH
    z_low, z_high = pos.sum() * low + max(b, 0), neg.sum() * high + min(b, 0)
    z = float(row @ a + b) - float(z_low) - float(z_high)
    return (a * row - low * pos - high * neg) / _stab(z, STABILIZER)


# -- the list ------------------------------------------------------------------------------------

def _conservation_cases(preset):
    return cases(networks(biases="zero", relu_after_linear=True))


PROPERTIES: dict[str, Property] = {p.name: p for p in [
    Property("well_formed", result_is_well_formed, cases()),
    Property("target", target_selects_the_row, cases()),
    Property("batch", batch_equals_samples, cases(batch=(2, 3))),
    Property("deterministic", deterministic_and_side_effect_free, cases()),
    Property("conservation", relevance_is_conserved, _conservation_cases,
             frozenset({"zero", "epsilon_plus", "epsilon_plus_flat", "epsilon_gamma_box",
                        "attn_lrp", "cp_lrp"})),
    Property("gradient_x_input", zero_is_gradient_times_input, cases(ties=False),
             frozenset({"zero"})),
    Property("linear_layer", linear_layer_base_case, linear_layer_cases()),
    Property("batchnorm_folding", batchnorm_folding_invariance,
             cases(networks(batchnorm_after_linear=True))),
    Property("layer_split", layer_split_invariance, cases()),
    Property("reference", agrees_with_reference, cases()),
]}

