"""lrp-core's property-based conformance suite, installed as ``lrp_conformance``.

It checks any LRP implementation (this library on each array backend, Zennit, Captum, yours)
against the properties LRP must have, on small random networks drawn by hypothesis, and prints
the smallest network where one fails as runnable torch code::

    lrp conformance --impl lrp_core-numpy          # or zennit, captum, mymodule:MyLRP
    pytest conformance --impl mymodule:MyLRP

    from lrp_conformance import load_implementation, run
    report = run(load_implementation("zennit"), examples=20)
    print(report.table())

Plug in an implementation by giving it the three members of :class:`Implementation`. The
properties are in :mod:`lrp_conformance.properties`, the networks in
:mod:`lrp_conformance.strategies`; see docs/conformance.md. Importing this package is light: the
names below load their module (and hypothesis, torch) on first use.
"""

from __future__ import annotations

import importlib

__all__ = [
    "Implementation", "PRESET_NAMES", "BOX_LOW", "BOX_HIGH", "EPSILON", "GAMMA",
    "load_implementation", "available_implementations", "BUILTIN_IMPLEMENTATIONS",
    "Network", "Case", "networks", "cases",
    "Property", "PropertyFailure", "PROPERTIES",
    "Report", "run", "check_property",
]

_HOMES = {
    "protocol": ("Implementation", "PRESET_NAMES", "BOX_LOW", "BOX_HIGH", "EPSILON", "GAMMA"),
    "implementations": ("load_implementation", "available_implementations",
                        "BUILTIN_IMPLEMENTATIONS"),
    "strategies": ("Network", "Case", "networks", "cases"),
    "properties": ("Property", "PropertyFailure", "PROPERTIES"),
    "runner": ("Report", "run", "check_property"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'lrp_conformance' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
