"""Generator backends: anything that streams chunks of one trace from a prompt plus a prefix.

``Scripted`` and ``FromIterator`` need no model. Heavy backends (``Transformers``, ``OpenAICompatible``) are
imported lazily on first use, so ``import generators`` does not load torch or httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

from interlock.generators.errors import BackendError, ScriptError
from interlock.generators.iterator import FromIterator
from interlock.generators.scripted import Scripted

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Transformers": "interlock.generators.transformers",
    "OpenAICompatible": "interlock.generators.openai_compat",
    "Replay": "interlock.generators.replay",
}

__all__ = ["BackendError", "FromIterator", "ScriptError", "Scripted", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'generators' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
