"""Shape arithmetic: the output-size rules against brute-force window counting, and validation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrp_core.kernels import shapes


def count_windows(length, kernel, stride, lo, hi, dilation, ceil_mode):
    """Brute force. Windows start at 0, stride, 2·stride, ... on the padded axis. Floor mode keeps
    those that end inside it. Ceil mode keeps adding windows until the axis is covered (while
    the previous window ends before the last cell), but none that would start beyond the input
    and its low padding (PyTorch's rule)."""
    total, reach = length + lo + hi, dilation * (kernel - 1)
    starts = range(0, total, stride)
    if not ceil_mode:
        return sum(1 for start in starts if start + reach < total)
    return sum(1 for start in starts
               if (start == 0 or start - stride + reach < total - 1) and start < length + lo)


@given(length=st.integers(1, 30), kernel=st.integers(1, 5), stride=st.integers(1, 4),
       lo=st.integers(0, 3), hi=st.integers(0, 3), dilation=st.integers(1, 3),
       ceil_mode=st.booleans())
def test_output_size_counts_the_windows(length, kernel, stride, lo, hi, dilation, ceil_mode):
    reach = dilation * (kernel - 1)
    # PyTorch's domain: padding at most half the dilated kernel (beyond it, its one-step
    # correction can leave a window that starts in the high padding, and so do we)
    lo, hi = min(lo, (reach + 1) // 2), min(hi, (reach + 1) // 2)
    if length + lo + hi <= reach:
        with pytest.raises(ValueError, match="does not fit"):
            shapes.pool_output_size(length, kernel, stride, lo, hi, dilation, ceil_mode)
        return
    expected = count_windows(length, kernel, stride, lo, hi, dilation, ceil_mode)
    assert shapes.pool_output_size(length, kernel, stride, lo, hi, dilation, ceil_mode) == expected
    if not ceil_mode:
        assert shapes.conv_output_size(length, kernel, stride, lo, hi, dilation) == expected


@pytest.mark.parametrize("length, kernel, stride, pad, ceil_mode, expected", [
    (224, 3, 1, 1, False, 224),
    (224, 2, 2, 0, False, 112),
    (7, 2, 2, 0, False, 3),
    (7, 2, 2, 0, True, 4),
    (6, 3, 2, 1, True, 4),   # torch: the last window starts at 6 = L + lo − 1, kept
    (5, 2, 2, 1, True, 3),   # ceil gives 4, whose window would start at 6 >= L + lo: dropped
    (112, 3, 2, 1, False, 56),
])
def test_known_pytorch_sizes(length, kernel, stride, pad, ceil_mode, expected):
    assert shapes.pool_output_size(length, kernel, stride, pad, pad, 1, ceil_mode) == expected


def test_output_spatial_shape_per_axis():
    assert shapes.output_spatial_shape((7, 9, 4), (3, 2, 1), (2, 1, 3), ((1, 0), (0, 2), (0, 0)),
                                       (1, 2, 1)) == (3, 9, 2)
    assert shapes.output_spatial_shape((7,), (2,), (2,), ((0, 0),), (1,), ceil_mode=True) == (4,)
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        shapes.output_spatial_shape((7, 7), (3,), (1,), ((0, 0),), (1,))


@pytest.mark.parametrize("value, expected", [
    (2, ((2, 2), (2, 2))),
    ((1, 3), ((1, 1), (3, 3))),
    (((0, 1), (2, 3)), ((0, 1), (2, 3))),
    ([1, (0, 2)], ((1, 1), (0, 2))),
])
def test_normalize_padding(value, expected):
    assert shapes.normalize_padding(value, 2) == expected


@pytest.mark.parametrize("value, match", [
    ((1, 2, 3), "needs 2 entries"),
    (((0, 1, 2), 0), "pair is"),
    (-1, "non-negative"),
    (((0, -1), 0), "non-negative"),
    (1.5, "must be an int"),
])
def test_normalize_padding_rejects(value, match):
    with pytest.raises(ValueError, match=match):
        shapes.normalize_padding(value, 2)


def test_normalize_tuple():
    assert shapes.normalize_tuple(3, 3, "kernel") == (3, 3, 3)
    assert shapes.normalize_tuple([1, 2], 2, "stride") == (1, 2)
    with pytest.raises(ValueError, match="stride needs 2 values"):
        shapes.normalize_tuple((1, 2, 3), 2, "stride")
    with pytest.raises(ValueError, match="dilation must be non-negative"):
        shapes.normalize_tuple((1, -2), 2, "dilation")
    with pytest.raises(ValueError, match="must be an int"):
        shapes.normalize_tuple(True, 1, "kernel")


@pytest.mark.parametrize("args, name", [
    ((5, 0, 1, 0, 0, 1), "kernel"),
    ((5, 2, 0, 0, 0, 1), "stride"),
    ((5, 2, 1, 0, 0, 0), "dilation"),
])
def test_conv_output_size_rejects_empty_windows(args, name):
    with pytest.raises(ValueError, match=f"{name} must be at least 1"):
        shapes.conv_output_size(*args)


def test_tap_mask_and_window_counts():
    # L = 4, lo = 1, hi = 2, kernel 3, stride 2: windows start at padded 0, 2, 4 (ceil mode adds
    # 4, reading padded cells 4, 5, 6 where 6 is beyond the padding)
    assert shapes.pool_output_size(4, 3, 2, 1, 2, 1, True) == 3
    assert shapes.tap_mask(3, 3, 2, 1, 1, 5) == [[False, True, True],
                                                 [True, True, False],
                                                 [True, True, False]]
    assert shapes.window_counts(4, 3, 2, 1, 2, 3, count_include_pad=False) == [2, 3, 1]
    assert shapes.window_counts(4, 3, 2, 1, 2, 3, count_include_pad=True) == [3, 3, 3]
    assert shapes.window_counts(4, 3, 2, 1, 1, 3, count_include_pad=True) == [3, 3, 2]


def test_taps_are_row_major():
    assert list(shapes.taps((2, 3))) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert len(list(shapes.taps((3, 3, 3)))) == 27


def test_window_extent():
    assert shapes.window_extent(out=3, kernel=3, stride=2, dilation=2) == 9
    assert shapes.window_extent(1, 1, 5, 7) == 1


def test_conv_spatial_dims_checks():
    assert shapes.conv_spatial_dims((2, 6, 5, 5), (4, 3, 3, 3), groups=2) == 2
    with pytest.raises(ValueError, match="needs 6"):
        shapes.conv_spatial_dims((2, 5, 5, 5), (4, 3, 3, 3), groups=2)
    with pytest.raises(ValueError, match="divide the 4 output channels"):
        shapes.conv_spatial_dims((2, 9, 5, 5), (4, 3, 3, 3), groups=3)
    with pytest.raises(ValueError, match="2 spatial axes"):
        shapes.conv_spatial_dims((2, 6, 5), (4, 3, 3, 3), groups=2)
    with pytest.raises(ValueError, match="1-3 kernel axes"):
        shapes.conv_spatial_dims((2, 6), (4, 6), groups=1)


def test_pool_spatial_dims_and_check_shape():
    assert shapes.pool_spatial_dims((1, 1, 4, 4, 4)) == 3
    with pytest.raises(ValueError, match="1-3 spatial axes"):
        shapes.pool_spatial_dims((1, 4))
    shapes.check_shape((1, 2), [1, 2], "x")
    with pytest.raises(ValueError, match="y: expected shape"):
        shapes.check_shape((1, 2), (1, 3), "y")
