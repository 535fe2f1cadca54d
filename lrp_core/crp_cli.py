"""``lrp explain MODEL INPUT... --crp LAYER [--top N]``: one Concept Relevance Propagation grid
per input instead of one heatmap.

For each input, the ``N`` (default 4) features of ``LAYER`` with the largest relevance for the
explained output (:class:`~lrp_core.TopNFeatures`) are explained down to the input and drawn as
one row of :func:`lrp_core.heatmap`'s CRP grid, written as
``STEM_crp_LAYER_topN_outK.png`` (``--save-relevance``: the concepts' input relevance as
``.npy``, shaped ``(N, *input)``). ``LAYER`` is a node name of the model (as ``lrp.LRP(model)``
prints them) or a layer index.
"""

from __future__ import annotations

import re

import numpy as np

from .arrays import to_numpy
from .cli import UserError, _first_line, _heatmap_scale
from .concepts import TopNFeatures
from .crp import CRP
from .heatmaps import heatmap
from .images import save_image

__all__ = ["DEFAULT_TOP", "add_arguments", "concept_analyzer", "write_concept_grids"]

#: concepts per input when ``--top`` is not given
DEFAULT_TOP = 4


def add_arguments(parser) -> None:
    """``--crp LAYER`` and ``--top N`` on the ``explain`` parser."""
    parser.add_argument("--crp", default=None, metavar="LAYER",
                        help="Concept Relevance Propagation at LAYER (a node name or a layer "
                             "index, as lrp.LRP(model) prints them): one grid per input of the "
                             "--top features of LAYER, each explained down to the input")
    parser.add_argument("--top", type=int, default=None, metavar="N",
                        help=f"with --crp: how many features to explain per input, those with the "
                             f"largest relevance (default: {DEFAULT_TOP})")


def concept_analyzer(args, analyzer) -> CRP | None:
    """The CRP of ``--crp``/``--top`` (``None`` without ``--crp``); a layer the model lacks, or
    a ``--top`` that is not positive, is the user's to fix."""
    if args.crp is None:
        if args.top is not None:
            raise UserError("--top N chooses the concepts of --crp LAYER: give --crp too")
        return None
    top = DEFAULT_TOP if args.top is None else args.top
    if top < 1:
        raise UserError(f"--top is a number of features, 1 or more; got {top}")
    graph = analyzer.model
    names = [node.name for node in graph.nodes]
    if args.crp in names:
        layer = names.index(args.crp)
    elif re.fullmatch(r"-?\d+", args.crp) and -len(graph) <= int(args.crp) < len(graph):
        layer = int(args.crp)
    else:
        listing = ", ".join(f"{i} {name}" if name else str(i) for i, name in enumerate(names))
        raise UserError(f"--crp {args.crp}: the model has no such layer; its layers (index and "
                        f"name): {listing}")
    return CRP(analyzer, layer, TopNFeatures(top))


def write_concept_grids(args, concepts: CRP, explainer, x, paths, stems, out, echo) -> None:
    """Explain the batch ``x`` (read from ``paths``) with the CRP ``concepts`` (on ``explainer``,
    the analyzer of this batch) and write one grid per input into ``out``; ``echo`` reports each
    file (or ``None``)."""
    crp = concepts if concepts.analyzer is explainer else CRP(
        explainer, concepts.layer, concepts.features, max_memory=concepts.max_memory)
    try:
        expl = crp(x, args.output_selection)
    except ValueError as error:
        message = _first_line(error)
        if message.startswith("TopNFeatures"):
            raise UserError(f"--top {crp.features.n}: {message.split(': ', 1)[-1]}") from None
        if args.output_selection is not None and "out of range" in message:
            raise ValueError(f"--output-selection {args.output_selection} is out of range: "
                             f"{message.split(': ', 1)[-1]}") from None
        raise
    relevance = to_numpy(expl.val)
    layer = re.sub(r"[^A-Za-z0-9._-]+", "_", args.crp).strip("_") or "layer"
    for k, (path, stem) in enumerate(zip(paths, stems)):
        one = _sample(expl, k)
        grid = heatmap(one, colormap=args.colormap, percentile=args.percentile,
                       overlay=True if args.overlay else None, alpha=args.alpha)[0]
        selected = expl.output_selection[k]
        name = f"{stem}_crp_{layer}_top{relevance.shape[1]}_out{selected}"
        scale = 1 if args.scale is None else _heatmap_scale(args, grid.shape)
        try:
            png = save_image(out / f"{name}.png", grid, scale=scale)
            if args.save_relevance:
                np.save(out / f"{name}.npy", relevance[k])
        except OSError as error:
            raise UserError(f"--out {args.out}: cannot write {name} there "
                            f"({error.strerror or error})") from None
        if echo is not None:
            echo(f"{path}: explained output {selected} through features "
                 f"{', '.join(map(str, expl.extras['concepts'][k]))} of "
                 f"{expl.extras['layer_label']} -> {png}")


def _sample(expl, k: int):
    """The CRP explanation of sample ``k`` alone (a batch of one)."""
    from dataclasses import replace

    extras = dict(expl.extras)
    for key in ("concepts", "concept_relevance", "feature_relevance", "concept_share"):
        extras[key] = extras[key][k:k + 1]
    return replace(expl, val=expl.val[k:k + 1], input=expl.input[k:k + 1],
                   output=expl.output[k:k + 1], output_selection=expl.output_selection[k:k + 1],
                   extras=extras)
