"""The heatmap grid of a Concept Relevance Propagation explanation (``lrp.heatmap(crp_expl)``).

One row per sample, one column per concept: each cell is the heatmap of that concept's input
relevance, titled with the concept's feature index and its share of the relevance at the layer
(``R_c / Σ_f |R_f|``, see :class:`~lrp_core.CRP`). The sample's input is drawn first in its row
when it is an image (one or three channels); the row label gives the explained output.
"""

from __future__ import annotations

import numpy as np

from .arrays import to_numpy
from .images import upscale

__all__ = ["concept_grid", "CELL"]

#: the side of a grid cell in pixels (an input is enlarged by whole pixels up to it)
CELL = 112


def concept_grid(expl, *, colormap, reduce, rangescale, percentile, process_batch: bool,
                 overlay, alpha: float, title: str | None = None) -> np.ndarray:
    """The grid of a CRP :class:`~lrp_core.Explanation` as one ``H x W x 3`` uint8 image; the
    keywords are :func:`lrp_core.heatmap`'s, applied to every cell (``process_batch=True``: one
    scale for all cells; by default each cell is scaled on its own)."""
    from .heatmaps import _colormap, heatmap

    extras = expl.extras or {}
    val = expl.val
    n, k = int(val.shape[0]), int(val.shape[1])
    flat = np.asarray(to_numpy(val)).reshape(n * k, *val.shape[2:])
    inputs = np.asarray(to_numpy(expl.input), dtype=np.float64) if expl.input is not None else None
    if overlay is True:
        if inputs is None:
            raise ValueError("overlay=True draws on the explanation's input, which it lacks")
        overlay = np.repeat(inputs, k, axis=0)
    cells = heatmap(flat, colormap=colormap, reduce=reduce, rangescale=rangescale,
                    percentile=percentile, process_batch=process_batch, overlay=overlay,
                    alpha=alpha)
    raw_shape = cells[0].shape[:2]
    factor = max(1, CELL // max(raw_shape))
    cells = [upscale(cell, factor) for cell in cells]
    concepts = extras.get("concepts") or [[None] * k for _ in range(n)]
    shares = extras.get("concept_share")
    kind = extras.get("feature_kind", "feature")
    rows, captions = [], []
    for i in range(n):
        row, caption = [], []
        picture = _input_picture(inputs[i]) if inputs is not None else None
        if picture is not None and picture.shape[:2] == raw_shape:
            row.append(upscale(picture, factor))
            caption.append("input")
        for j in range(k):
            row.append(cells[i * k + j])
            share = "" if shares is None else f"\n{100.0 * float(shares[i][j]):+.1f} %"
            caption.append(f"{kind} {concepts[i][j]}{share}")
        rows.append(row)
        captions.append(caption)
    selection = expl.output_selection
    labels = [f"sample {i}" + ("" if selection is None else f"\noutput {selection[i]}")
              for i in range(n)]
    if title is None:  # the layer by index and name; by description when it has no name
        layer, name = extras.get("layer"), extras.get("layer_name")
        label = f"layer {layer} ({name})" if name else extras.get("layer_label")
        title = "Concept Relevance Propagation" + (f" at {label}" if label else "")
        if shares is not None:
            title += (f"\neach {kind}: its index and its share of the relevance at the layer "
                      f"(R_c / sum of |R|)")
    ends = ("negative", "0", "positive") if rangescale == "centered" else ("low", "", "high")
    return _draw(rows, captions, labels, title, _colormap(colormap), ends)


def _input_picture(x: np.ndarray) -> np.ndarray | None:
    """An image-shaped input ``(1 or 3, H, W)`` drawn in grey or RGB, scaled by its extrema."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        return None
    lo, hi = float(x.min()), float(x.max())
    scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    image = np.rint(np.moveaxis(scaled, 0, -1) * 255).astype(np.uint8)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed-size bitmap font
        return ImageFont.load_default()


def _draw(rows, captions, labels, title: str, colormap, ends) -> np.ndarray:
    """A white canvas: the title, then each row's label and its cells, each with its caption
    above it; a colour bar of ``colormap`` (a ``cmap.Colormap``) at the bottom, its left end,
    middle and right end labelled ``ends``."""
    from PIL import Image, ImageDraw

    cell_h, cell_w = rows[0][-1].shape[:2]
    gap, margin = 10, 16
    title_font, font = _font(18), _font(14)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text, f):
        left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=f, spacing=2)
        return right - left, bottom - top

    label_w = max(size(label, font)[0] for label in labels) + gap
    caption_h = max(size(c, font)[1] for row in captions for c in row) + gap // 2
    columns = max(len(row) for row in rows)
    grid_w = columns * cell_w + (columns - 1) * gap
    title_lines = title.split("\n", 1) if title else []
    title_h = (size(title_lines[0], title_font)[1] + gap if title else 0) + \
        (size(title_lines[1], font)[1] + gap // 2 if len(title_lines) > 1 else 0)
    bar_h = 14 + size("negative", font)[1] + 2 * gap
    width = max([2 * margin + label_w + grid_w] +
                [2 * margin + size(line, f)[0] for line, f in zip(title_lines, (title_font, font))])
    height = 2 * margin + title_h + len(rows) * (caption_h + cell_h + gap) + bar_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    ink = (20, 20, 20)
    y = margin
    if title:
        draw.text((margin, y), title_lines[0], fill=ink, font=title_font)
        if len(title_lines) > 1:
            below = y + size(title_lines[0], title_font)[1] + gap
            draw.text((margin, below), title_lines[1], fill=(90, 90, 90), font=font)
        y += title_h
    x0 = margin + label_w
    for label, row, caption in zip(labels, rows, captions):
        w, h = size(label, font)
        draw.multiline_text((margin, y + caption_h + (cell_h - h) // 2), label, fill=ink,
                            font=font, spacing=2)
        for j, (image, text) in enumerate(zip(row, caption)):
            x = x0 + j * (cell_w + gap)
            w, h = size(text, font)
            draw.multiline_text((x + (cell_w - w) // 2, y + caption_h - gap // 2 - h), text,
                                fill=ink, font=font, spacing=2, align="center")
            canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (x, y + caption_h))
        y += caption_h + cell_h + gap
    bar_w = min(grid_w, 300)
    bar_x = x0 + (grid_w - bar_w) // 2
    bar = np.asarray(colormap(np.linspace(0, 1, bar_w), bytes=True))[:, :3]
    canvas.paste(Image.fromarray(np.ascontiguousarray(np.repeat(bar[None], 14, axis=0))),
                 (bar_x, y))
    draw.rectangle((bar_x - 1, y - 1, bar_x + bar_w, y + 14), outline=(120, 120, 120))
    y += 14 + gap // 2
    left, middle, right = ends
    draw.text((bar_x, y), left, fill=ink, font=font)
    draw.text((bar_x + bar_w - size(right, font)[0], y), right, fill=ink, font=font)
    if middle:
        draw.text((bar_x + (bar_w - size(middle, font)[0]) // 2, y), middle, fill=ink, font=font)
    return np.asarray(canvas)
