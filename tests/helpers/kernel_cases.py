"""Keyword arguments of the kernel calls, taken from a test case's geometry (a dict with
``kernel``, ``stride``, ``padding``, ``dilation`` and ``groups``)."""

from __future__ import annotations


def conv_kwargs(case) -> dict:
    """``stride``, ``padding``, ``dilation`` and ``groups`` of ``case``, for the conv kernels."""
    return {k: case[k] for k in ("stride", "padding", "dilation", "groups")}


def pool_kwargs(case, *, dilation=True) -> dict:
    """``kernel``, ``stride``, ``padding`` (and ``dilation`` unless ``dilation=False``) of
    ``case``, for the pooling kernels."""
    keys = ("kernel", "stride", "padding") + (("dilation",) if dilation else ())
    return {k: case[k] for k in keys}
