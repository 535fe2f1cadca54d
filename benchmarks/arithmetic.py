"""What a pass must compute, counted instead of timed: the limit a rule sets, free of the load.

``python -m benchmarks.arithmetic --models vgg16 resnet50 efficientnet_b0 --batch 1``

Timings on a shared machine move by tens of percent between runs; the arithmetic of a pass does
not. For the gradient baseline and for lrp-core on torch under each preset, this counts, with
torch's dispatcher (every aten operation the pass runs, backward included):

* **conv/matmul GFLOP**: the floating-point operations of convolutions and matrix products
  (by the formulas of ``torch.utils.flop_counter``: forward and transposed convolutions,
  ``convolution_backward``, ``mm``/``addmm``/``bmm``);
* **other MB**: the bytes every other operation reads and writes (each distinct tensor argument
  read once, each result written once; the elementwise passes, the normalisations, pooling,
  copies; a view moves nothing and is not counted): on a CPU these passes are memory-bound, so
  this is their cost up to the bandwidth;

and reports both as ratios to the gradient's. The FLOP ratio is the floor of the time ratio
where convolutions dominate: a rule whose modified forward and transposed products cost 2.5x
the gradient's cannot run in 1.5x its time. It explains, for example, why ``EpsilonPlusFlat``
on EfficientNet (SiLU activations, so the ``a⁻`` terms of the z⁺ rule do not vanish) costs
about 2.5x: see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["count_pass", "main"]

_MATMUL = {"convolution", "convolution_backward", "mm", "addmm", "bmm", "baddbmm",
           "_convolution", "mkldnn_convolution", "conv1d", "conv2d", "conv3d",
           "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "linear", "matmul"}


def _composite_flops(name, args, out) -> int | None:
    """FLOPs of the composite operations torch dispatches undecomposed under
    ``inference_mode`` (where lrp-core's passes run), by the formulas torch's flop counter uses
    for their decompositions: 2 multiply-adds per weight tap and output (conv), per input and
    weight tap (transposed conv), per contracted pair (linear, matmul)."""
    import math

    if name in ("conv1d", "conv2d", "conv3d"):
        weight = args[1]
        return 2 * out.numel() * math.prod(weight.shape[1:])
    if name in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        x, weight = args[0], args[1]
        return 2 * x.numel() * math.prod(weight.shape[1:])
    if name == "linear":
        return 2 * out.numel() * args[0].shape[-1]
    if name == "matmul":
        return 2 * out.numel() * args[0].shape[-1]
    return None


def _counting_mode():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import flop_registry

    class Counting(TorchDispatchMode):
        """FLOPs of the operations torch's flop counter knows (convolutions, matrix products),
        and bytes read and written by every other non-view aten operation. (Not
        ``FlopCounterMode`` itself: its module tracking refuses ``torch.autograd.grad``.)"""

        def __init__(self):
            super().__init__()
            self.flops = 0
            self.bytes = 0
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func.overloadpacket
            composite = _composite_flops(packet.__name__, args, out)
            if composite is not None:
                self.flops += composite
            elif packet in flop_registry:
                self.flops += flop_registry[packet](*args, **kwargs, out_val=out)
            elif packet.__name__ not in _MATMUL and not func.is_view:
                # read: each distinct tensor argument (an ``out=`` argument is only written);
                # written: each result (in place: the argument itself, read and written)
                read = {id(t): t for t in tree_flatten(
                    (args, {k: v for k, v in kwargs.items() if k != "out"}))[0]
                    if isinstance(t, torch.Tensor)}
                written = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
                self.bytes += sum(t.numel() * t.element_size()
                                  for t in [*read.values(), *written])
                self.ops += 1
            return out

    return Counting()


def count_pass(call) -> dict:
    """GFLOP of convolutions and matrix products, and MB moved by every other operation, of
    one ``call()``."""
    counting = _counting_mode()
    with counting:
        call()
    return {"gflop": counting.flops / 1e9, "other_mb": counting.bytes / 1e6,
            "other_ops": counting.ops}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet50", "efficientnet_b0"])
    parser.add_argument("--presets", nargs="+",
                        default=["Epsilon", "EpsilonPlusFlat", "EpsilonGammaBox"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows as JSON lines here")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.contenders import prepare
    from benchmarks.models import MODELS, build

    torch.set_num_threads(2)
    rows = []
    print("| model | batch | preset | conv/matmul GFLOP | x gradient | other MB | x gradient |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in args.models:
        spec = MODELS[name]
        model = build(spec, torch.float32)
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.rand((args.batch, *spec.input_shape), generator=torch.Generator().manual_seed(1))
        gradient = prepare("gradient", spec, model, x, "Epsilon")
        gradient.call()
        base = count_pass(gradient.call)
        rows.append({"model": name, "batch": args.batch, "preset": "-", "contender": "gradient",
                     **base})
        print(f"| {name} | {args.batch} | gradient | {base['gflop']:.2f} | 1.00 | "
              f"{base['other_mb']:.0f} | 1.00 |")
        for preset in args.presets:
            ours = prepare("lrp-core/torch", spec, model, x, preset)
            ours.call()  # builds the modified layers, which later calls reuse
            counts = count_pass(ours.call)
            rows.append({"model": name, "batch": args.batch, "preset": preset,
                         "contender": "lrp-core/torch", **counts})
            print(f"| {name} | {args.batch} | {preset} | {counts['gflop']:.2f} | "
                  f"{counts['gflop'] / base['gflop']:.2f} | {counts['other_mb']:.0f} | "
                  f"{counts['other_mb'] / base['other_mb']:.2f} |")
            ours.close()
    if args.json:
        with open(args.json, "w") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
