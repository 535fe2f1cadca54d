"""``lrp demo``: the RelevancePropagation.jl custom-rule example, run on a trained LeNet-5 and
real handwritten digits.

The model (``lrp_core.models.lenet5_digits``) and the digits (``lrp_core.data.sample_digits``)
ship with the package, so this runs on the base install: NumPy, no torch, no onnx, no
scikit-learn. Four analyzers explain each digit's predicted class:

- ``ZeroRule`` everywhere (LRP-0),
- the ``EpsilonPlus`` composite,
- the custom-rule example's list of eight rules with the two-line ``MyGammaRule``,
- the same list with the built-in ``GammaRule`` (the two must agree exactly),

and one labelled PNG grid shows them: one row per digit, one column per analyzer.
"""

from __future__ import annotations

import os

import numpy as np

from . import presets, rules
from .analyzer import LRP
from .arrays import relu
from .data import load_npz, sample_digits
from .heatmaps import heatmap
from .images import save_image, upscale
from .models import lenet5_digits

__all__ = ["MyGammaRule", "example_rules", "demo_analyzers", "run_demo", "labelled_grid",
           "DEFAULT_DIGITS"]

#: the digits shown by default (one row each)
DEFAULT_DIGITS = (0, 1, 3, 4, 5, 9)
CELL = 112  # pixels per 28x28 image: each input pixel becomes a 4x4 block


class MyGammaRule(rules.LRPRule):
    """The custom-rule example's two-line rule: LRP-γ with γ = 0.25."""

    def modify_parameters(self, param):
        return param + 0.25 * relu(param)


def example_rules(gamma_rule) -> list:
    """The custom-rule example's rules for the 8 layers of LeNet-5, with ``gamma_rule`` on the
    second conv."""
    return [rules.ZPlusRule(), rules.EpsilonRule(), gamma_rule, rules.EpsilonRule(),
            rules.ZeroRule(), rules.ZeroRule(), rules.ZeroRule(), rules.ZeroRule()]


def demo_analyzers(model) -> dict[str, LRP]:
    """The demo's four analyzers of ``model``, by column title."""
    return {
        "ZeroRule": LRP(model),
        "EpsilonPlus": LRP(model, presets.EpsilonPlus()),
        "rule list with\nMyGammaRule": LRP(model, example_rules(MyGammaRule())),
        "rule list with\nGammaRule": LRP(model, example_rules(rules.GammaRule())),
    }


def run_demo(out_dir=".", digits=DEFAULT_DIGITS, *, echo=print) -> dict:
    """Explain the sample ``digits`` with the four analyzers, write ``demo.png`` into ``out_dir``
    and report through ``echo``. Returns ``{"figure": path, "difference": float,
    "predicted": [...], "labels": [...]}``."""
    model = lenet5_digits(np.float64)
    images, labels = sample_digits(np.float64)
    index = [int(np.flatnonzero(labels == d)[0]) for d in digits]
    x, labels = images[index], labels[index]

    analyzers = demo_analyzers(model)
    custom = analyzers["rule list with\nMyGammaRule"]
    echo("The RelevancePropagation.jl custom-rule example's rules, with the two-line custom rule:")
    echo("    class MyGammaRule(lrp.LRPRule):")
    echo("        def modify_parameters(self, param):")
    echo("            return param + 0.25 * lrp.relu(param)")
    echo(repr(custom))
    explanations = {title: analyzer(x) for title, analyzer in analyzers.items()}

    a = explanations["rule list with\nMyGammaRule"].val
    b = explanations["rule list with\nGammaRule"].val
    difference = float(np.max(np.abs(a - b)))
    predicted = explanations["ZeroRule"].output_selection
    record = load_npz("lenet5_digits.npz")
    accuracy, n_heldout = float(record["heldout_accuracy"]), int(record["n_heldout"])

    columns = ["input"] + list(analyzers)
    heatmaps = [heatmap(expl) for expl in explanations.values()]  # each digit scaled on its own
    rows = []
    for i in range(len(x)):
        digit = np.rint(np.clip(x[i, 0], 0, 1) * 255).astype(np.uint8)
        row = [np.repeat(digit[..., None], 3, axis=-1)] + [rendered[i] for rendered in heatmaps]
        rows.append([upscale(image, CELL // image.shape[0]) for image in row])
    row_labels = [(f"predicted {p}", f"label {t}") for p, t in zip(predicted, labels)]
    figure = labelled_grid(
        rows, columns, row_labels,
        title=f"LRP on a LeNet-5 trained on handwritten digits "
              f"({100 * accuracy:.1f}% held-out accuracy)",
        legend="relevance for the predicted class:   negative (blue)   0 (white)   positive (red)")
    os.makedirs(out_dir, exist_ok=True)
    path = save_image(os.path.join(out_dir, "demo.png"), figure)

    echo(f"explained digits {', '.join(map(str, labels.tolist()))}: predicted "
         f"{', '.join(map(str, predicted))} (held-out accuracy of this LeNet-5: "
         f"{100 * accuracy:.1f}% on {n_heldout} digits)")
    echo(f"MyGammaRule vs GammaRule: max |difference| = {difference:.3g}")
    echo(f"wrote {path}  (rows: digits; columns: the input and each analyzer; red: positive "
         "relevance, blue: negative)")
    return {"figure": path, "difference": difference, "predicted": list(predicted),
            "labels": labels.tolist()}


# -- the figure ------------------------------------------------------------------------------------

def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed-size bitmap font
        return ImageFont.load_default()


def labelled_grid(rows: list, columns: list[str], row_labels: list, *, title: str = "",
                  legend: str = "", colormap: str = "seismic") -> np.ndarray:
    """A white figure with a title, one column title per column (``\\n`` for a second line), a
    label (one or more lines) left of each row, the ``rows`` of equally sized RGB images, and a
    colour bar of ``colormap`` with the ``legend`` text under it. Returns an H x W x 3 uint8
    image."""
    from PIL import Image, ImageDraw

    cell_h, cell_w = rows[0][0].shape[:2]
    gap, margin = 10, 18
    title_font, header_font, label_font = _font(20), _font(16), _font(16)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text, font):
        left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=font, spacing=3)
        return right - left, bottom - top

    label_texts = ["\n".join(label) if isinstance(label, (tuple, list)) else str(label)
                   for label in row_labels]
    label_w = max(size(t, label_font)[0] for t in label_texts) + gap
    header_h = max(size(c, header_font)[1] for c in columns) + gap
    title_h = size(title, title_font)[1] + 2 * gap if title else 0
    legend_h = 16 + size(legend, label_font)[1] + 3 * gap if legend else 0
    grid_w = len(columns) * cell_w + (len(columns) - 1) * gap
    width = max(margin + label_w + grid_w + margin,
                size(title, title_font)[0] + 2 * margin if title else 0)
    height = margin + title_h + header_h + len(rows) * (cell_h + gap) + legend_h + margin
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    ink = (20, 20, 20)

    y = margin
    if title:
        draw.text((margin, y), title, fill=ink, font=title_font)
        y += title_h
    x0 = margin + label_w
    for j, column in enumerate(columns):
        w, h = size(column, header_font)
        x = x0 + j * (cell_w + gap) + (cell_w - w) // 2
        draw.multiline_text((x, y + header_h - gap - h), column, fill=ink, font=header_font,
                            spacing=3, align="center")
    y += header_h
    for label, row in zip(label_texts, rows):
        w, h = size(label, label_font)
        draw.multiline_text((margin, y + (cell_h - h) // 2), label, fill=ink, font=label_font,
                            spacing=3)
        for j, image in enumerate(row):
            canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (x0 + j * (cell_w + gap), y))
        y += cell_h + gap
    if legend:
        import cmap

        y += gap
        bar_w = min(grid_w, 360)
        bar_x = x0 + (grid_w - bar_w) // 2
        bar = np.asarray(cmap.Colormap(colormap)(np.linspace(0, 1, bar_w), bytes=True))[:, :3]
        canvas.paste(Image.fromarray(np.ascontiguousarray(np.repeat(bar[None], 16, axis=0))),
                     (bar_x, y))
        draw.rectangle((bar_x - 1, y - 1, bar_x + bar_w, y + 16), outline=(120, 120, 120))
        y += 16 + gap // 2
        w, _ = size(legend, label_font)
        draw.text((x0 + (grid_w - w) // 2, y), legend, fill=ink, font=label_font)
    return np.asarray(canvas)
