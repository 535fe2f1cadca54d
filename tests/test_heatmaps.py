"""Heatmaps on known arrays: the colour of zero, the sign, the reductions, the scaling, overlays."""

import numpy as np
import pytest

import lrp_core as lrp
from lrp_core.heatmaps import REDUCTIONS
from lrp_core.models import random_lenet5

cmap = pytest.importorskip("cmap")


def colour(name, value):
    """The colormap's own RGB bytes at ``value`` in [0, 1] (the independent reference)."""
    return np.asarray(cmap.Colormap(name)(np.array([value]), bytes=True))[0, :3]


def signed_batch():
    """(2, 3, 4, 6): left half positive, right half negative, in every channel."""
    r = np.zeros((2, 3, 4, 6))
    r[:, :, :, :3] = 1.0
    r[:, :, :, 3:] = -0.5
    return r


def test_one_image_per_sample_hw3_uint8():
    images = lrp.heatmap(np.random.default_rng(0).standard_normal((5, 3, 7, 9)))
    assert isinstance(images, list) and len(images) == 5
    for image in images:
        assert (isinstance(image, np.ndarray) and image.shape == (7, 9, 3)
                and image.dtype == np.uint8)


def test_zero_relevance_is_the_middle_colour_under_centered():
    images = lrp.heatmap(np.zeros((2, 1, 5, 5)))
    middle = colour("seismic", 0.5)
    assert np.all(middle > 240)  # seismic's middle is white
    for image in images:
        assert np.all(image == middle)
    # zero pixels among nonzero ones too
    r = np.zeros((1, 1, 4, 4))
    r[0, 0, 0, 0], r[0, 0, 3, 3] = 2.0, -1.0
    image = lrp.heatmap(r)[0]
    assert np.all(image[1:3, 1:3] == middle)
    np.testing.assert_array_equal(image[0, 0], colour("seismic", 1.0))     # +max: the top end
    np.testing.assert_array_equal(image[3, 3], colour("seismic", 0.25))    # -max/2: a quarter up


def test_sign_survives_sum_red_positive_blue_negative():
    image = lrp.heatmap(signed_batch())[0]
    left, right = image[:, :3].astype(int), image[:, 3:].astype(int)
    assert np.all(left[..., 0] > left[..., 2] + 100)    # positive: red
    assert np.all(right[..., 2] > right[..., 0] + 100)  # negative: blue
    # sum over 3 channels: +3 is the maximum |R|, -1.5 sits at a quarter of the scale
    np.testing.assert_array_equal(image[0, 0], colour("seismic", 1.0))
    np.testing.assert_array_equal(image[0, 5], colour("seismic", 0.25))


@pytest.mark.parametrize("reduce, expected", [("sum", -1.0), ("norm", 5.0), ("maxabs", 4.0),
                                              ("sumabs", 7.0), ("abssum", 1.0)])
def test_reductions_on_a_known_pixel(reduce, expected):
    r = np.array([3.0, -4.0]).reshape(1, 2, 1, 1)
    assert REDUCTIONS[reduce](r).item() == pytest.approx(expected)


@pytest.mark.parametrize("reduce", ["norm", "maxabs", "sumabs", "abssum"])
def test_unsigned_reductions_are_never_blue(reduce):
    image = lrp.heatmap(signed_batch(), reduce=reduce)[0].astype(int)
    assert np.all(image[..., 0] >= image[..., 2])


def test_extrema_maps_min_and_max_to_the_ends():
    r = np.arange(12, dtype=float).reshape(1, 1, 3, 4) + 5.0
    image = lrp.heatmap(r, rangescale="extrema", colormap="inferno")[0]
    np.testing.assert_array_equal(image[0, 0], colour("inferno", 0.0))
    np.testing.assert_array_equal(image[2, 3], colour("inferno", 1.0))


def test_colormap_by_name_or_object():
    r = np.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    by_name = lrp.heatmap(r, colormap="RdBu_r")[0]
    by_object = lrp.heatmap(r, colormap=cmap.Colormap("RdBu_r"))[0]
    np.testing.assert_array_equal(by_name, by_object)
    assert not np.array_equal(by_name, lrp.heatmap(r)[0])


def test_percentile_clipping_lets_an_outlier_not_wash_out_the_rest():
    r = np.ones((1, 1, 10, 10))
    r[0, 0, 0, 0] = 1000.0
    plain = lrp.heatmap(r)[0]
    clipped = lrp.heatmap(r, percentile=95)[0]
    assert np.all(plain[5, 5] == colour("seismic", 0.5 + 1 / 2000))  # almost white
    np.testing.assert_array_equal(clipped[5, 5], colour("seismic", 1.0))  # clipped: full red
    np.testing.assert_array_equal(clipped[0, 0], colour("seismic", 1.0))
    extrema = lrp.heatmap(np.arange(100.0).reshape(1, 1, 10, 10), rangescale="extrema",
                          colormap="gray", percentile=90)[0]
    np.testing.assert_array_equal(extrema[0, 0], colour("gray", 0.0))
    np.testing.assert_array_equal(extrema[9, 9], colour("gray", 1.0))


def test_each_sample_is_scaled_alone_unless_process_batch():
    r = np.ones((2, 1, 3, 3))
    r[1] *= 0.5
    alone = lrp.heatmap(r)
    together = lrp.heatmap(r, process_batch=True)
    np.testing.assert_array_equal(alone[0], alone[1])
    np.testing.assert_array_equal(together[0][0, 0], colour("seismic", 1.0))
    np.testing.assert_array_equal(together[1][0, 0], colour("seismic", 0.75))


def test_three_dimensional_arrays_are_single_channel_batches():
    r = np.random.default_rng(1).standard_normal((3, 5, 6))
    for a, b in zip(lrp.heatmap(r), lrp.heatmap(r[:, None])):
        np.testing.assert_array_equal(a, b)


def test_explanation_and_analyzer_forms_agree():
    model = random_lenet5(seed=3)
    x = np.random.default_rng(2).random((2, 1, 28, 28))
    analyzer = lrp.LRP(model, lrp.EpsilonPlus())
    expl = analyzer(x)
    from_expl = lrp.heatmap(expl)
    from_val = lrp.heatmap(expl.val)
    from_analyzer = lrp.heatmap(x, analyzer)
    assert len(from_expl) == 2
    for a, b, c in zip(from_expl, from_val, from_analyzer):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    selected = lrp.heatmap(x, analyzer, 3)
    for a, b in zip(selected, lrp.heatmap(analyzer(x, 3))):
        np.testing.assert_array_equal(a, b)


def test_overlay_blends_with_alpha():
    r = np.zeros((1, 1, 4, 4))
    r[0, 0, 0, 0] = 1.0
    grey = np.full((1, 1, 4, 4), 0.2)
    grey[0, 0, 3, 3] = 1.0  # scaled by its extrema: 0 and 1
    heat = lrp.heatmap(r)[0]
    opaque = lrp.heatmap(r, overlay=grey, alpha=1.0)[0]
    transparent = lrp.heatmap(r, overlay=grey, alpha=0.0)[0]
    np.testing.assert_array_equal(opaque, heat)
    assert np.all(transparent[0, 0] == 0) and np.all(transparent[3, 3] == 255)
    half = lrp.heatmap(r, overlay=grey, alpha=0.5)[0]
    expected = np.rint(0.5 * heat[3, 3] + 0.5 * 255).astype(np.uint8)
    np.testing.assert_array_equal(half[3, 3], expected)


def test_overlay_true_draws_on_the_explanations_input():
    model = random_lenet5(seed=4)
    x = np.random.default_rng(3).random((2, 1, 28, 28))
    expl = lrp.LRP(model)(x)
    a = lrp.heatmap(expl, overlay=True)
    b = lrp.heatmap(expl.val, overlay=x)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="overlay=True"):
        lrp.heatmap(expl.val, overlay=True)


def test_overlay_on_a_larger_image_resizes_the_relevance():
    r = np.zeros((1, 1, 4, 4))
    r[0, 0, :2] = 1.0
    r[0, 0, 2:] = -1.0
    photo = np.full((40, 40, 3), 128, dtype=np.uint8)
    image = lrp.heatmap(r, overlay=[photo], alpha=0.8)[0]
    assert image.shape == (40, 40, 3)
    top, bottom = image[2].astype(int), image[-3].astype(int)
    assert np.all(top[:, 0] > top[:, 2]) and np.all(bottom[:, 2] > bottom[:, 0])


def test_relevance_of_another_namespace():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(5).standard_normal((2, 3, 6, 6)).astype(np.float32)
    expected = lrp.heatmap(r)
    for got in (lrp.heatmap(torch.from_numpy(r)),
                lrp.heatmap(torch.from_numpy(r).to(torch.bfloat16))):
        assert len(got) == 2
    for a, b in zip(lrp.heatmap(torch.from_numpy(r)), expected):
        np.testing.assert_array_equal(a, b)


def test_array_api_strict_relevance():
    xps = pytest.importorskip("array_api_strict")
    r = np.random.default_rng(6).standard_normal((1, 1, 5, 5))
    np.testing.assert_array_equal(lrp.heatmap(xps.asarray(r))[0], lrp.heatmap(r)[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"reduce": "mean"}, "reduce"),
    ({"rangescale": "minmax"}, "rangescale"),
    ({"colormap": "no-such-colormap"}, "colormap"),
    ({"percentile": 0}, "percentile"),
    ({"alpha": 2.0}, "alpha"),
])
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lrp.heatmap(np.ones((1, 1, 2, 2)), **kwargs)


def test_bad_arrays_are_clear_errors():
    with pytest.raises(ValueError, match="batch first"):
        lrp.heatmap(np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        lrp.heatmap(np.full((1, 1, 2, 2), np.nan))
    with pytest.raises(ValueError, match="overlay images"):
        lrp.heatmap(np.ones((2, 1, 2, 2)), overlay=[np.zeros((2, 2), np.uint8)])


def test_save_image_writes_a_png_with_the_same_pixels(tmp_path):
    from PIL import Image

    image = lrp.heatmap(signed_batch())[0]
    path = lrp.save_image(tmp_path / "h.png", image)
    with Image.open(path) as png:
        assert png.format == "PNG"
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), image)
    big = lrp.save_image(tmp_path / "big.png", image, scale=4)
    with Image.open(big) as png:
        assert png.size == (6 * 4, 4 * 4)
        np.testing.assert_array_equal(np.asarray(png)[::4, ::4], image)
    lrp.save_image(tmp_path / "grey.png", np.linspace(0, 1, 12).reshape(3, 4))  # floats in [0, 1]
    with pytest.raises(ValueError, match="H x W"):
        lrp.save_image(tmp_path / "bad.png", np.zeros((2, 3, 5)))


def test_to_model_input_resizes_converts_and_normalises():
    from lrp_core.images import to_model_input

    rgb = np.zeros((10, 20, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    x = to_model_input(rgb, 3, (5, 10), mean=(0.5, 0.0, 0.0), std=(0.5, 1.0, 1.0))
    assert x.shape == (3, 5, 10) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1.0)  # (1 - 0.5) / 0.5
    np.testing.assert_allclose(x[1:], 0.0)
    grey = to_model_input(rgb, 1, (10, 20))
    assert grey.shape == (1, 10, 20)
    np.testing.assert_allclose(grey, 76 / 255, atol=1 / 255)  # ITU-R 601 luma of red
    # grey → RGB
    assert to_model_input(np.full((4, 4), 255, np.uint8), 3, (4, 4)).shape == (3, 4, 4)
    with pytest.raises(ValueError, match="channels"):
        to_model_input(rgb, 4, (5, 10))


def test_load_image_modes(tmp_path):
    from PIL import Image

    from lrp_core.images import load_image

    deep = (np.arange(16 * 16).reshape(16, 16) * 200).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    grey = load_image(tmp_path / "deep.png", "L")
    assert grey.dtype == np.uint8 and grey.max() == 255 and grey.shape == (16, 16)
    assert load_image(tmp_path / "deep.png").shape == (16, 16, 3)
    Image.fromarray(np.zeros((3, 3, 4), np.uint8)).save(tmp_path / "clear.png")  # fully transparent
    assert np.all(load_image(tmp_path / "clear.png") == 255)  # drawn on white
