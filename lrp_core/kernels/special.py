"""Special functions the array API standard lacks, written with standard calls only.

``erf`` (for the exact GELU): the Maclaurin series for ``|x| < 2.5`` and the continued fraction
of ``erfc`` beyond (A&S 7.1.5 and 7.1.14), both in double precision to about 1e-15.
"""

from __future__ import annotations

import math

import array_api_compat

__all__ = ["erf"]

_SERIES_TERMS = 48
_FRACTION_DEPTH = 60
_SWITCH = 2.5


def erf(x):
    """The error function ``erf(x) = 2/√π ∫₀ˣ exp(−t²) dt``, elementwise."""
    xp = array_api_compat.array_namespace(x)
    ax = xp.abs(x)
    near = xp.where(ax < _SWITCH, ax, xp.zeros_like(ax))
    far = xp.where(ax < _SWITCH, xp.full_like(ax, _SWITCH), ax)
    # series: erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
    term = near
    total = near
    square = near * near
    for n in range(1, _SERIES_TERMS):
        term = -term * square / n
        total = total + term / (2 * n + 1)
    series = (2.0 / math.sqrt(math.pi)) * total
    # continued fraction: erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
    tail = far
    for k in range(_FRACTION_DEPTH, 0, -1):
        tail = far + (k / 2.0) / tail
    fraction = 1.0 - xp.exp(-far * far) / (math.sqrt(math.pi) * tail)
    magnitude = xp.where(ax < _SWITCH, series, fraction)
    return xp.where(x < 0, -magnitude, magnitude)
