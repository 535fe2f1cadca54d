"""Time torchvision's VGG-16 (random weights, 1x3x224x224, CPU) read with ``lrp.from_torch``
against Zennit's ``EpsilonPlusFlat``, in one run on the same machine.

Measures the forward pass, the gradient (forward + autograd backward to the input only: the cost
LRP is compared with), our ``EpsilonPlusFlat`` and ``ZeroRule``, and Zennit's
``EpsilonPlusFlat`` (with its VGG canonizer), each the best of ``--repeat`` runs after one
warm-up (which also builds our modified layers; building the analyzer, i.e. tracing and
canonizing, is timed on its own). It also checks that the two ``EpsilonPlusFlat`` relevances
agree (with Zennit's stabiliser set to ours, 1e-9, and its MaxPool given the Norm rule, as in
tests/test_torch_models.py). Usage::

    python benchmarks/vgg16_torch_vs_zennit.py [--dtype float32] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import torch
import torchvision
from _timing import best_of

import lrp_core as lrp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).to(dtype).eval()
    x = torch.rand(1, 3, 224, 224, dtype=dtype, generator=torch.Generator().manual_seed(1))
    target = int(model(x).argmax())

    def forward():
        with torch.no_grad():
            model(x)

    def gradient():  # with respect to the input only (no parameter gradients are computed)
        xt = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xt)[0, target], xt)

    results = {"forward": best_of(forward, args.repeat), "gradient": best_of(gradient, args.repeat)}

    start = time.perf_counter()
    ours = lrp.LRP(model, lrp.EpsilonPlusFlat())
    build = time.perf_counter() - start
    results["ours EpsilonPlusFlat"] = best_of(lambda: ours(x), args.repeat)
    zero = lrp.LRP(model)
    results["ours ZeroRule"] = best_of(lambda: zero(x), args.repeat)

    comparison = ""
    try:
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlusFlat
        from zennit.rules import Norm
        from zennit.torchvision import VGGCanonizer
        from zennit.types import MaxPool
    except ImportError:
        comparison = "zennit is not installed: pip install zennit"
    else:
        onehot = torch.eye(1000, dtype=dtype)[[target]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            composite = EpsilonPlusFlat(canonizers=[VGGCanonizer()])  # Zennit's defaults
            with Gradient(model, composite) as attributor:
                results["Zennit EpsilonPlusFlat"] = best_of(lambda: attributor(x, onehot),
                                                            args.repeat)
            matched = EpsilonPlusFlat(stabilizer=1e-9, layer_map=[(MaxPool, Norm(stabilizer=1e-9))],
                                      canonizers=[VGGCanonizer()])
            with Gradient(model, matched) as attributor:
                _, theirs = attributor(x, onehot)
        mine = ours(x).val
        difference = float((mine - theirs).abs().max() / theirs.abs().max())
        comparison = (f"ours vs Zennit (matched conventions): max |difference| / max |relevance| "
                      f"= {difference:.1e}")

    gradient_time = results["gradient"]
    print(f"VGG-16 (torchvision, random weights), input 1x3x224x224 {args.dtype}, CPU, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print(f"  building the analyzer (trace, canonize): {build:.3f} s")
    print("  | pass | seconds | x gradient |")
    print("  |---|---:|---:|")
    for name, seconds in results.items():
        print(f"  | {name} | {seconds:.3f} | {seconds / gradient_time:.2f} |")
    print(f"  {comparison}")


if __name__ == "__main__":
    main()
