"""The implementation protocol: what an LRP implementation gives the suite, and the presets.

Anyone can plug in an implementation that has these three members::

    class Implementation(Protocol):
        name: str
        supports: set[str]   # preset names it can compute
        def explain(self, model: torch.nn.Module, x: torch.Tensor, preset: str,
                    targets: list[int]) -> numpy.ndarray: ...

``model`` is a ``torch.nn.Module`` in eval mode with float64 parameters; ``x`` is a float64
tensor, batch first; ``targets`` holds one output index per sample. The result is a NumPy array
of ``x``'s shape: the input relevance when the target output's relevance is 1 (not its logit)
and every other output's relevance is 0. The implementation must not modify ``model`` or ``x``.

Presets (the names of :data:`lrp_core.presets.PRESETS`; their rules are in docs/conventions.md):
``zero``, ``epsilon_plus``, ``epsilon_plus_flat``, ``epsilon_alpha2_beta1``,
``epsilon_alpha2_beta1_flat``, ``epsilon_gamma_box``, ``attn_lrp``, ``cp_lrp``. The box bounds
of ``epsilon_gamma_box`` are given by the suite: :data:`BOX_LOW` and :data:`BOX_HIGH`, and every
input the suite makes lies between them. Every preset uses ``epsilon = 1e-6`` on Dense layers
and ``gamma = 0.25``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lrp_core.presets import PRESETS

__all__ = ["Implementation", "PRESET_NAMES", "BOX_LOW", "BOX_HIGH", "EPSILON", "GAMMA"]

#: every preset name, in the order tables print them (the registry's order)
PRESET_NAMES = tuple(PRESETS)

#: the input bounds of ``epsilon_gamma_box``; the suite's inputs lie in ``[BOX_LOW, BOX_HIGH]``
BOX_LOW, BOX_HIGH = -1.0, 1.0

#: the presets' parameters
EPSILON, GAMMA = 1e-6, 0.25


@runtime_checkable
class Implementation(Protocol):
    """An LRP implementation under test (see the module docstring for the contract)."""

    name: str
    supports: set[str]

    def explain(self, model, x, preset: str, targets: list[int]):
        """The input relevance of ``x`` for ``targets`` under ``preset`` (a NumPy array)."""
        ...
