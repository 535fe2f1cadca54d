"""Heatmaps of relevance, as VisionHeatmaps.jl draws them.

    images = lrp.heatmap(expl)                  # one H x W x 3 uint8 NumPy image per sample
    images = lrp.heatmap(x, analyzer)           # analyze, then render
    images = lrp.heatmap(expl, overlay=True, alpha=0.6)   # on top of the input
    lrp.save_image("heatmap.png", images[0])

Each sample goes through the same steps (VisionHeatmaps.jl's pipeline):

1. **reduce** the channel axis of ``(N, C, H, W)`` relevance to one number per pixel:
   ``"sum"`` (default; keeps the sign), ``"norm"`` (2-norm), ``"maxabs"`` (``max |R_c|``),
   ``"sumabs"`` (``Σ |R_c|``), ``"abssum"`` (``|Σ R_c|``). One channel needs no reduction.
2. **clip** (optional, ``percentile=p``): under ``"centered"`` the values are clipped to
   ``±`` the ``p``-th percentile of ``|R|`` (zero stays zero); under ``"extrema"`` to the
   ``(100 − p)``-th and ``p``-th percentiles. A few very large values then no longer wash out
   the rest.
3. **rangescale** to [0, 1]: ``"centered"`` (default) maps ``[−m, m]`` with ``m = max |R|`` to
   [0, 1], so zero lands on the middle of the colormap; ``"extrema"`` maps ``[min, max]``.
4. **colormap**: any name of the `cmap <https://cmap-docs.readthedocs.io>`_ library (or a
   ``cmap.Colormap``). The default, ``"seismic"``, is VisionHeatmaps.jl's: dark blue, blue,
   white, red, dark red; so with ``sum`` and ``centered`` positive relevance is red, negative
   relevance blue and zero white.
5. **overlay** (optional): the heatmap blended onto the input image,
   ``(1 − alpha) · image + alpha · heatmap``.

Each sample is scaled on its own unless ``process_batch=True`` (one scale for the batch).
The relevance may live in any array namespace (NumPy, torch, CuPy, ...): it is copied to the
host once.
"""

from __future__ import annotations

import numpy as np

from .arrays import namespace_of, to_numpy
from .explanation import Explanation
from .images import _as_uint8_image, resize, save_image

__all__ = ["heatmap", "save_image", "REDUCTIONS", "RANGESCALES", "PRESETS"]

#: channel reductions, as in VisionHeatmaps.jl
REDUCTIONS = {
    "sum": lambda r: r.sum(axis=1),
    "norm": lambda r: np.sqrt((r * r).sum(axis=1)),
    "maxabs": lambda r: np.abs(r).max(axis=1),
    "sumabs": lambda r: np.abs(r).sum(axis=1),
    "abssum": lambda r: np.abs(r.sum(axis=1)),
}
RANGESCALES = ("centered", "extrema")
#: defaults per kind of explanation (``Explanation.heatmap``)
PRESETS = {
    "attribution": {"colormap": "seismic", "reduce": "sum", "rangescale": "centered"},
}
_DEFAULT = PRESETS["attribution"]


def heatmap(val, analyzer=None, output_selection=None, *, colormap=None, reduce=None,
            rangescale=None, percentile=None, process_batch: bool = False, overlay=None,
            alpha: float = 0.6) -> list[np.ndarray]:
    """One ``H x W x 3`` uint8 NumPy image per sample of a batch of relevance.

    ``heatmap(expl)`` renders an :class:`~lrp_core.Explanation`; ``heatmap(array)`` a relevance
    array; ``heatmap(x, analyzer, output_selection=None)`` first computes
    ``analyzer(x, output_selection)``. Arrays are batch first: ``(N, C, H, W)``, or ``(N, H, W)``
    for one channel; of any array namespace.

    Keywords (see the module docstring for the steps): ``reduce`` (``"sum"``, ``"norm"``,
    ``"maxabs"``, ``"sumabs"``, ``"abssum"``), ``rangescale`` (``"centered"``, ``"extrema"``),
    ``colormap`` (a name of the ``cmap`` library, e.g. ``"seismic"``, ``"bwr"``, ``"RdBu_r"``,
    ``"inferno"``, ``"gray"``, or a ``cmap.Colormap``), ``percentile`` (clip at this percentile,
    e.g. ``99.5``; ``None``: no clipping), ``process_batch`` (one scale for the whole batch),
    ``overlay`` and ``alpha``. The defaults come from the explanation's kind (for LRP:
    ``"seismic"``, ``"sum"``, ``"centered"``).

    ``overlay``: ``True`` blends each heatmap onto the explanation's input; or give the images:
    an array shaped like the relevance (any namespace, each sample scaled to [0, 1] by its
    extrema) or a list of one ``H x W`` / ``H x W x 3`` image per sample (uint8, or floats in
    [0, 1]), possibly larger than the relevance: the relevance is then resized to the image.
    ``alpha`` is the heatmap's opacity (VisionHeatmaps.jl's default, 0.6).

    A CRP explanation (:class:`~lrp_core.CRP`) is drawn as one labelled grid, a list of one
    image: a row per sample (its input first, if an image), a column per concept, each titled
    with its feature index and its share of the relevance at the layer; the keywords apply to
    every cell, each scaled on its own unless ``process_batch=True``.
    """
    if analyzer is not None:
        if not callable(analyzer):
            raise TypeError(f"heatmap(x, analyzer): the analyzer must be callable, "
                            f"got {analyzer!r}")
        val = analyzer(val, output_selection)
    elif output_selection is not None:
        raise TypeError("output_selection needs an analyzer: "
                        "heatmap(x, analyzer, output_selection)")
    inputs = None
    preset = _DEFAULT
    concepts = val if isinstance(val, Explanation) and val.analyzer == "CRP" else None
    if isinstance(val, Explanation):
        inputs = val.input
        preset = PRESETS.get(val.heatmap, _DEFAULT)
        val = val.val
    colormap = preset["colormap"] if colormap is None else colormap
    reduce = preset["reduce"] if reduce is None else reduce
    rangescale = preset["rangescale"] if rangescale is None else rangescale
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce={reduce!r} is not one of {', '.join(map(repr, REDUCTIONS))}")
    if rangescale not in RANGESCALES:
        raise ValueError(f"rangescale={rangescale!r} is not one of "
                         f"{', '.join(map(repr, RANGESCALES))}")
    if percentile is not None and not 0 < float(percentile) <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    cmap = _colormap(colormap)
    if concepts is not None:  # one labelled grid, samples x concepts
        from .concept_heatmaps import concept_grid

        return [concept_grid(concepts, colormap=cmap, reduce=reduce, rangescale=rangescale,
                             percentile=percentile, process_batch=process_batch,
                             overlay=overlay, alpha=alpha)]

    maps = REDUCTIONS[reduce](_batch_nchw(val, "relevance"))  # (N, H, W) float64
    if not np.all(np.isfinite(maps)):
        raise ValueError("the relevance contains NaN or infinite values")
    images = _overlay_images(overlay, inputs, len(maps))
    if images is not None:  # the relevance follows the image's size
        maps = [resize(m, image.shape[:2]) for m, image in zip(maps, images)]
    groups = [list(maps)] if process_batch else [[m] for m in maps]
    scaled = [s for group in groups for s in _rangescale(group, rangescale, percentile)]
    out = []
    for i, values in enumerate(scaled):
        rgb = np.asarray(cmap(values, bytes=True))[..., :3]
        if images is not None:
            rgb = _blend(images[i], rgb, float(alpha))
        out.append(np.ascontiguousarray(rgb, dtype=np.uint8))
    return out


def _colormap(colormap):
    import cmap

    if isinstance(colormap, cmap.Colormap):
        return colormap
    try:
        return cmap.Colormap(colormap)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"unknown colormap {colormap!r}: use a name of the cmap library, for "
                         "example 'seismic', 'bwr', 'RdBu_r', 'coolwarm', 'inferno', 'viridis' "
                         "or 'gray'") from error


def _host(array) -> np.ndarray:
    """A float64 NumPy copy of an array of any namespace (low-precision floats go through
    float32)."""
    if not isinstance(array, np.ndarray):
        try:
            xp = namespace_of(array)
        except TypeError:
            array = np.asarray(array)
        else:
            if xp.isdtype(array.dtype, "real floating") and xp.finfo(array.dtype).bits < 32:
                array = xp.astype(array, xp.float32)  # bfloat16 has no NumPy dtype
            array = to_numpy(array)
    return np.asarray(array, dtype=np.float64)


def _batch_nchw(array, what: str) -> np.ndarray:
    array = _host(array)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(f"the {what} must be batch first, (N, C, H, W) or (N, H, W); "
                         f"got shape {array.shape}")
    return array


def _rangescale(maps: list, rangescale: str, percentile) -> list[np.ndarray]:
    """``maps`` scaled to [0, 1] together (one scale for all of them)."""
    values = np.concatenate([m.ravel() for m in maps])
    if rangescale == "centered":
        if percentile is not None:
            bound = float(np.percentile(np.abs(values), percentile))
            maps = [np.clip(m, -bound, bound) for m in maps]
        m = float(np.max(np.abs(values))) if percentile is None else bound
        if m == 0.0:
            return [np.full(x.shape, 0.5) for x in maps]
        return [x / (2.0 * m) + 0.5 for x in maps]
    if percentile is not None:
        lo, hi = (float(v) for v in np.percentile(values, [100.0 - float(percentile),
                                                           float(percentile)]))
    else:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return [np.full(x.shape, 0.5) for x in maps]
    return [np.clip((x - lo) / (hi - lo), 0.0, 1.0) for x in maps]


def _overlay_images(overlay, inputs, n: int):
    """The images to draw on, as float RGB arrays in [0, 1], one per sample (or None)."""
    if overlay is None or overlay is False:
        return None
    if overlay is True:
        if inputs is None:
            raise ValueError("overlay=True draws on the explanation's input: pass an Explanation, "
                             "or give the images: heatmap(relevance, overlay=images)")
        overlay = inputs
    if isinstance(overlay, (list, tuple)):
        images = [_as_uint8_image(image).astype(np.float64) / 255.0 for image in overlay]
    else:
        batch = _batch_nchw(overlay, "overlay")
        if batch.shape[1] not in (1, 3):
            raise ValueError(f"overlay images have 1 or 3 channels; got {batch.shape[1]}")
        images = []
        for sample in batch:
            lo, hi = sample.min(), sample.max()
            sample = (sample - lo) / (hi - lo) if hi > lo else np.zeros_like(sample)
            images.append(np.moveaxis(sample, 0, -1))
    if len(images) != n:
        raise ValueError(f"got {len(images)} overlay images for {n} heatmaps")
    return [np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else
            np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
            for image in images]


def _blend(image: np.ndarray, rgb: np.ndarray, alpha: float) -> np.ndarray:
    mixed = (1.0 - alpha) * image + alpha * (rgb.astype(np.float64) / 255.0)
    return np.rint(np.clip(mixed, 0.0, 1.0) * 255).astype(np.uint8)
