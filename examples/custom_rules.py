"""The RelevancePropagation.jl custom-rule example, step by step: a custom LRP rule in two lines,
on a LeNet-5.

    python examples/custom_rules.py [--out DIR]

Runs on the base install (NumPy); uses torch for one extra step when it is installed. Each step
prints what it shows; the last one writes ``custom_rules.png`` (one heatmap per digit).
"""

from __future__ import annotations

import argparse
import importlib.util
import os

import numpy as np

import lrp_core as lrp
from lrp_core.data import sample_digits
from lrp_core.models import lenet5_digits


def step(title: str) -> None:
    print(f"\n== {title}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for custom_rules.png (default: here)")
    args = parser.parse_args()

    # -------------------------------------------------------------------------------------------
    step("1. A model: the LeNet-5 that ships with lrp-core (trained on scikit-learn's digits)")
    # Any lrp_core graph works here, and so do a torch.nn.Module or an ONNX file: lrp.LRP reads
    # them. This one is built by hand from NumPy weights: conv 5x5 -> relu -> max pool -> conv 5x5
    # -> relu -> max pool -> flatten -> three dense layers. Each Conv/Dense carries its ReLU, as
    # Flux's layers do, so the network has 8 layers, numbered from 0.
    lenet5 = lenet5_digits(np.float64)
    print(lenet5)
    x, labels = sample_digits(np.float64)  # (10, 1, 28, 28): one held-out digit of each class
    x, labels = x[:4], labels[:4]

    # -------------------------------------------------------------------------------------------
    step("2. The custom rule, in two lines")
    # A rule is a small object whose methods are hooks. The generic LRP step for a layer with
    # input a and upper relevance R is
    #     z = L'(a),  s = R / stabilize(z),  R_in = a * (transpose of L' applied to s)
    # where L' is the layer with modified parameters. modify_parameters(p) is applied to the
    # weight and to the bias: here p + 0.25 * max(p, 0), which is LRP-gamma with gamma = 0.25.
    # lrp.relu works on NumPy, torch and CuPy arrays alike, so the rule does too.

    class MyGammaRule(lrp.LRPRule):
        def modify_parameters(self, param):
            return param + 0.25 * lrp.relu(param)

    print(MyGammaRule.__name__,
          "overrides modify_parameters only; every other hook keeps its default")

    # -------------------------------------------------------------------------------------------
    step("3. One rule per layer: the custom-rule example's list")
    rules = [lrp.ZPlusRule(), lrp.EpsilonRule(), MyGammaRule(), lrp.EpsilonRule(),
             lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZeroRule()]
    analyzer = lrp.LRP(lenet5, rules)
    print(analyzer)  # each layer, numbered, with its rule
    try:
        lrp.LRP(lenet5, rules[:7])
    except ValueError as error:  # a list of the wrong length says which layers it should match
        print("with 7 rules instead of 8:", str(error).splitlines()[0])

    # -------------------------------------------------------------------------------------------
    step("4. Explain: relevance of each input pixel for the predicted class")
    expl = analyzer(x)
    print(expl)
    print("predicted:", expl.output_selection, " labels:", labels.tolist())
    print("relevance shape:", expl.val.shape, "dtype:", expl.val.dtype, "(the input's)")
    # The output relevance is 1 for the predicted class. Without biases and stabilisers the input
    # relevance would sum to 1 exactly; here the biases and the epsilon absorb a little of it.
    print("input relevance sums:", np.round(expl.val.reshape(len(x), -1).sum(axis=1), 3).tolist())

    # -------------------------------------------------------------------------------------------
    step("5. The check: the same list with the built-in GammaRule gives the same relevance")
    builtin = lrp.LRP(lenet5, [lrp.GammaRule() if isinstance(r, MyGammaRule) else r for r in rules])
    difference = float(np.max(np.abs(builtin(x).val - expl.val)))
    print(f"MyGammaRule vs GammaRule: max |difference| = {difference:.3g}")
    assert difference == 0.0

    # -------------------------------------------------------------------------------------------
    step("6. One step by hand: what the rule does at layer 2 (the second conv)")
    # layerwise_relevances=True keeps the relevance at every layer boundary: entry i is the
    # relevance of layer i's input. lrp.propagate runs one rule on one layer, as the analyzer does.
    full = analyzer(x, layerwise_relevances=True)
    relevances = full.extras["layerwise_relevances"]
    a2 = lenet5[1].forward(lenet5[0].forward(x))  # the input of layer 2
    r_in = lrp.propagate(MyGammaRule(), lenet5[2], a2, relevances[3])
    print("propagate(MyGammaRule(), layer 2, a, R) equals the analyzer's step:",
          bool(np.allclose(r_in, relevances[2], rtol=1e-12, atol=1e-15)))
    # and the same step from the equation, with the modified layer built by hand
    conv = lenet5[2]
    gamma = lrp.Conv(conv.weight + 0.25 * np.maximum(conv.weight, 0),
                     conv.bias + 0.25 * np.maximum(conv.bias, 0))
    z = gamma.forward(a2)
    s = relevances[3] / lrp.stabilize_denom(z, 1e-9)
    _, pullback = gamma.linearize(a2)  # the vector-Jacobian product of the (linear) layer
    by_hand = a2 * pullback(s)[0]
    print("and equals a * W'^T (R / z') computed by hand:",
          bool(np.allclose(by_hand, r_in, rtol=1e-10)))

    # -------------------------------------------------------------------------------------------
    if importlib.util.find_spec("torch") is not None:
        step("7. The same analyzer on torch tensors (torch is installed)")
        import torch

        val = analyzer(torch.from_numpy(x)).val  # weights are converted once per namespace/dtype
        print(type(val).__name__, tuple(val.shape), "max |torch - numpy| =",
              f"{float((val - torch.from_numpy(expl.val)).abs().max()):.2g}")

    # -------------------------------------------------------------------------------------------
    step("8. Heatmaps: red where the relevance is positive, blue where it is negative")
    images = lrp.heatmap(expl)  # one H x W x 3 uint8 image per digit (seismic, sum, centered)
    strip = np.concatenate([np.pad(image, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                            for image in images], axis=1)
    os.makedirs(args.out, exist_ok=True)
    path = lrp.save_image(os.path.join(args.out, "custom_rules.png"), strip, scale=4)
    print("wrote", path)


if __name__ == "__main__":
    main()
