"""Built-in verifiers. Each is registered by name in the ``interlock.verifiers`` entry-point group.

Verifiers are imported lazily (``from verifiers import Arithmetic`` loads sympy only then), so that listing
or importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from interlock.verifiers.errors import VerifierConfigError, VerifiersError

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Arithmetic": "interlock.verifiers.arithmetic",
    "Constraints": "interlock.verifiers.constraints",
    "Game24": "interlock.verifiers.game24",
    "Maze": "interlock.verifiers.maze",
    "SpatialMap": "interlock.verifiers.spatialmap",
    "Zebra": "interlock.verifiers.zebra",
    "ForkExtractor": "interlock.verifiers.fork",
}

__all__ = ["VerifierConfigError", "VerifiersError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'verifiers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
