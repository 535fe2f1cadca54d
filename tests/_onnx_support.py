"""Shared by the ONNX model tests: the presets by name, onnxruntime as the forward oracle,
and a relevance comparison scaled to the largest entry."""

import numpy as np
import pytest

import lrp_core as lrp

ort = pytest.importorskip("onnxruntime")


PRESETS = {
    "EpsilonPlus": lambda low, high: lrp.EpsilonPlus(),
    "EpsilonPlusFlat": lambda low, high: lrp.EpsilonPlusFlat(),
    "EpsilonAlpha2Beta1": lambda low, high: lrp.EpsilonAlpha2Beta1(),
    "EpsilonAlpha2Beta1Flat": lambda low, high: lrp.EpsilonAlpha2Beta1Flat(),
    "EpsilonGammaBox": lambda low, high: lrp.EpsilonGammaBox(low, high),
}


def ort_forward(path, x):
    """onnxruntime, one sample at a time (the graphs fix the batch size to 1)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def assert_relevance_close(actual, expected, rtol):
    """Equal up to ``rtol`` of the largest relevance (relevance maps have many tiny entries)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)
