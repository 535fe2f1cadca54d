"""The ``lrp`` command line (also ``python -m lrp_core``)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

import lrp_core as lrp

__all__ = ["main", "random_lenet5"]


def random_lenet5(seed: int = 0, dtype=np.float64) -> lrp.Graph:
    """LeNet-5 built by hand with seeded random weights (He-scaled), for examples and tests:
    conv 5x5 (1→6, relu) → max pool 2 → conv 5x5 (6→16, relu) → max pool 2 → flatten →
    dense 256→120 (relu) → dense 120→84 (relu) → dense 84→10, on 28x28 inputs."""
    rng = np.random.default_rng(seed)

    def he(*shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

    def small(n):
        return (0.01 * rng.standard_normal(n)).astype(dtype)

    return lrp.Chain(
        lrp.Conv(he(6, 1, 5, 5), small(6), activation=lrp.relu),
        lrp.MaxPool(2),
        lrp.Conv(he(16, 6, 5, 5), small(16), activation=lrp.relu),
        lrp.MaxPool(2),
        lrp.Flatten(),
        lrp.Dense(he(120, 256), small(120), activation=lrp.relu),
        lrp.Dense(he(84, 120), small(84), activation=lrp.relu),
        lrp.Dense(he(10, 84), small(10)),
    )


class MyGammaRule(lrp.LRPRule):
    """The seed document's two-line custom rule: LRP-γ with γ = 0.25."""

    def modify_parameters(self, param):
        return param + 0.25 * lrp.relu(param)


def seed_rules(gamma_rule) -> list:
    return [lrp.ZPlusRule(), lrp.EpsilonRule(), gamma_rule, lrp.EpsilonRule(),
            lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZeroRule(), lrp.ZeroRule()]


def demo(args) -> int:
    model = random_lenet5()
    x = np.random.default_rng(1).random((4, 1, 28, 28))
    custom = lrp.LRP(model, seed_rules(MyGammaRule()))
    builtin = lrp.LRP(model, seed_rules(lrp.GammaRule()))
    print(custom)
    a, b = custom(x), builtin(x)
    print(f"explained outputs: {a.output_selection}")
    print(f"MyGammaRule vs GammaRule: max |difference| = {float(np.max(np.abs(a.val - b.val))):.3g}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lrp", description="Layer-wise Relevance Propagation.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="run the seed example: a custom rule in two lines")
    demo_parser.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
