"""Time a hand-built VGG-16-sized chain (random weights, 1x3x224x224) on NumPy.

Measures, in one run on the same machine: the forward pass, and the LRP analysis with
``EpsilonPlusFlat`` and with ``ZeroRule``, each the best of ``--repeat`` runs after one warm-up
(which also builds the modified layers). Usage::

    python benchmarks/vgg16_numpy.py [--dtype float32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
from _timing import best_of

import lrp_core as lrp

VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M"]


def vgg16(dtype, seed=0) -> lrp.Graph:
    rng = np.random.default_rng(seed)
    layers, channels = [], 3
    for item in VGG16_CONFIG:
        if item == "M":
            layers.append(lrp.MaxPool(2))
            continue
        w = rng.standard_normal((item, channels, 3, 3)) * np.sqrt(2.0 / (channels * 9))
        layers += [lrp.Conv(w.astype(dtype), np.zeros(item, dtype), padding=1), lrp.ReLU()]
        channels = item
    layers.append(lrp.Flatten())
    for n_in, n_out, act in [(512 * 7 * 7, 4096, True), (4096, 4096, True), (4096, 1000, False)]:
        w = (rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(dtype)
        layers.append(lrp.Dense(w, np.zeros(n_out, dtype), activation=lrp.relu if act else None))
    return lrp.Chain(*layers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)
    model = vgg16(dtype)
    x = np.random.default_rng(1).random((1, 3, 224, 224)).astype(dtype)
    forward = best_of(lambda: model(x), args.repeat)
    results = {"forward": forward}
    for name, rules in [("ZeroRule", None), ("EpsilonPlusFlat", lrp.EpsilonPlusFlat())]:
        analyzer = lrp.LRP(model, rules)
        results[name] = best_of(lambda analyzer=analyzer: analyzer(x), args.repeat)
    print(f"VGG-16 (random weights), input 1x3x224x224 {dtype}, NumPy {np.__version__}, "
          f"{platform.processor() or platform.machine()}")
    for name, seconds in results.items():
        print(f"  {name:<16} {seconds:7.3f} s   {seconds / forward:5.2f}x forward")


if __name__ == "__main__":
    main()
