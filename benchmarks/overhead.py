"""The Python overhead of an LRP pass (graph walk, rule dispatch, conversions), measured.

The analyzer runs on torch's ``meta`` device, where every tensor operation computes only the
shape of its result: what remains is interpreter work. ``cProfile`` charges each function its
own time (``tottime``); the sum over the functions in ``lrp_core`` (and its backends) is this
library's Python overhead per pass. (On the CPU the same profile would also charge the
elementwise arithmetic written with operators, ``a * b``, to the calling function; on ``meta``
that arithmetic costs nothing.) The profiler slows Python down, so the figure is an upper
bound; the second figure applies the profiled share of this library's functions to the meta
pass timed without the profiler. Both are set against the median time of the same pass on the
CPU (float32, alternating with the gradient).

    python -m benchmarks.overhead [--model resnet50] [--preset EpsilonPlusFlat] [--rounds 5]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time

__all__ = ["main"]

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _own_seconds(stats: pstats.Stats) -> float:
    own = (os.path.join(HERE, "lrp_core"), os.path.join(HERE, "backends"))
    return sum(row[2] for (path, _, _), row in stats.stats.items() if path.startswith(own))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--preset", default="EpsilonPlusFlat")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch
    import torchvision

    import lrp_core as lrp
    import lrp_core.analyzer as analyzer_module
    from benchmarks.contenders import PRESETS

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(weights=None).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, 3, 224, 224)
    target = [int(model(x).argmax())]

    cpu = lrp.LRP(model, PRESETS[args.preset]())
    cpu(x, target)
    lrp_times, gradient_times = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        cpu(x, target)
        lrp_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        xt = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xt)[0, target[0]], xt)
        gradient_times.append(time.perf_counter() - start)

    # on meta, values cannot be checked for NaN: those two checks are skipped here only
    analyzer_module._all_finite = lambda xp, value: True
    analyzer_module.LRP._check_parameters = lambda self, graph, xp, layers: None
    meta = lrp.LRP(model.to("meta"), PRESETS[args.preset]())
    xm = x.to("meta")
    meta(xm, [0])
    start = time.perf_counter()
    for _ in range(args.rounds):
        meta(xm, [0])
    meta_seconds = (time.perf_counter() - start) / args.rounds
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.rounds):
        meta(xm, [0])
    profile.disable()
    stats = pstats.Stats(profile)
    own = _own_seconds(stats) / args.rounds
    share = _own_seconds(stats) / sum(row[2] for row in stats.stats.values())
    lrp_median = statistics.median(lrp_times)
    print(f"{args.model}, batch 1, 224x224, {args.preset}, torch {torch.__version__}, "
          f"{args.threads} threads")
    print(f"  LRP pass on the CPU (median of {args.rounds}): {lrp_median * 1000:.0f} ms; "
          f"the gradient: {statistics.median(gradient_times) * 1000:.0f} ms")
    print(f"  this library's own Python per pass (meta device, cProfile): {own * 1000:.1f} ms "
          f"= {own / lrp_median:.1%} of the CPU pass (an upper bound: profiled)")
    print(f"  unprofiled: the meta pass takes {meta_seconds * 1000:.1f} ms, {share:.1%} of it in "
          f"this library's functions: {share * meta_seconds * 1000:.1f} ms = "
          f"{share * meta_seconds / lrp_median:.1%} of the CPU pass")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
