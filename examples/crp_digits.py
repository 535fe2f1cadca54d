"""Concept Relevance Propagation on the demo's LeNet-5: which channels of its second convolution
a digit's prediction rests on, and where in the digit each of them lies.

    python examples/crp_digits.py                       # writes docs/crp.png (as in the README)
    python examples/crp_digits.py --out DIR --digits 3,8 --layer 2 --top 4

Runs on the base install (NumPy, Pillow, cmap): the trained LeNet-5 and the held-out digits ship
with lrp-core.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import lrp_core as lrp
from lrp_core.data import sample_digits
from lrp_core.models import lenet5_digits


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs", help="folder for crp.png (default: docs)")
    parser.add_argument("--digits", default="3,8", help="digits to explain (default: 3,8)")
    parser.add_argument("--layer", type=int, default=2,
                        help="the concept layer's index (default: 2, the second convolution)")
    parser.add_argument("--top", type=int, default=4, help="concepts per digit (default: 4)")
    args = parser.parse_args(argv)

    model = lenet5_digits(np.float64)
    images, labels = sample_digits(np.float64)
    chosen = [int(np.flatnonzero(labels == int(d))[0]) for d in args.digits.split(",")]
    x = images[chosen]

    analyzer = lrp.LRP(model, lrp.EpsilonPlus())
    crp = lrp.CRP(analyzer, args.layer, lrp.TopNFeatures(args.top))
    print(crp)
    expl = crp(x)  # val: (digits, concepts, 1, 28, 28)
    for n, digit in enumerate(labels[chosen]):
        shares = ", ".join(f"{c} ({100 * s:+.1f} %)" for c, s in
                           zip(expl.extras["concepts"][n], expl.extras["concept_share"][n]))
        print(f"digit {digit}, predicted {expl.output_selection[n]}: channels {shares}")
    os.makedirs(args.out, exist_ok=True)
    path = lrp.save_image(os.path.join(args.out, "crp.png"), lrp.heatmap(expl)[0])
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
