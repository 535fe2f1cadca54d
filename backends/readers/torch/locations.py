"""Naming an fx node in error messages: its kind, its target and the user's line that made it.

:func:`node_error` builds the :class:`lrp_core.UnsupportedOperatorError` of a node the reader
cannot translate: ``cannot translate fx node 'sub' (call_function operator.sub (-)), called at
/path/model.py:42 in forward: `return y - 1.0`: <reason>``. The line comes from the stack trace fx
records for the node, skipping torch's own frames and the tracing wrapper's.
"""

from __future__ import annotations

import operator
import os
import re

import torch
import torch.fx as fx

from lrp_core.errors import UnsupportedOperatorError

from .tracing import WRAPPER_FILE, relative_name

__all__ = ["qualname", "location", "node_error"]

_TORCH_DIR = os.path.dirname(torch.__file__)

_OPERATOR_NAMES = {operator.add: "operator.add (+)", operator.iadd: "operator.iadd (+=)",
                   operator.sub: "operator.sub (-)", operator.mul: "operator.mul (*)",
                   operator.truediv: "operator.truediv (/)",
                   operator.matmul: "operator.matmul (@)",
                   operator.getitem: "operator.getitem ([])", getattr: "getattr",
                   operator.pow: "operator.pow (**)", operator.floordiv: "operator.floordiv (//)",
                   operator.mod: "operator.mod (%)", operator.neg: "operator.neg (-x)",
                   operator.isub: "operator.isub (-=)", operator.imul: "operator.imul (*=)",
                   operator.itruediv: "operator.itruediv (/=)"}


def qualname(fn) -> str:
    """The name a user knows a function by (``torch.nn.functional.relu``, ``operator.sub (-)``)."""
    if fn in _OPERATOR_NAMES:
        return _OPERATOR_NAMES[fn]
    module = getattr(fn, "__module__", None) or "torch"
    name = getattr(fn, "__name__", None) or repr(fn)
    if module.startswith("torch._C._nn") or module == "torch.nn.functional":
        module = "torch.nn.functional"
    elif module.startswith("torch._C") or module.startswith("torch._VariableFunctions"):
        module = "torch"
    return f"{module}.{name}"


def location(node: fx.Node) -> str:
    """Where in the user's code the node was created: ``file:line in func: `code```."""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)', trace)
    for filename, line, func, code in reversed(frames):
        path = os.path.abspath(filename)
        if path.startswith(_TORCH_DIR) or path == WRAPPER_FILE:
            continue
        return f"{filename}:{line} in {func}: `{code.strip()}`"
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, kind = list(stack.values())[-1]
        return f"inside module '{relative_name(path)}' ({getattr(kind, '__name__', kind)})"
    return "at an unknown place (no stack trace recorded)"


def node_error(node: fx.Node, modules: dict, reason: str,
               kind: type = UnsupportedOperatorError) -> UnsupportedOperatorError:
    """The error for a node that cannot be translated (``modules``: the wrapper's, by name;
    ``kind``: the error class, :class:`lrp_core.InputShapeNeededError` where shapes would do)."""
    if node.op == "call_module":
        module = modules.get(node.target)
        what = f"call_module '{relative_name(node.target)}' ({type(module).__name__})"
    elif node.op == "call_function":
        what = f"call_function {qualname(node.target)}"
    elif node.op == "call_method":
        what = f"call_method Tensor.{node.target}"
    else:
        what = f"{node.op} {node.target}"
    return kind(
        f"cannot translate fx node '{node.name}' ({what}), called at {location(node)}: {reason}")
